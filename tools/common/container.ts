/**
 * Where the tunnel server finds its TLS files inside a container or pod: the Docker
 * deployments bind-mount them there, the Kubernetes manifests mount the Secret there.
 */
export const TLS_MOUNT_PATH = '/etc/ctun/tls';
