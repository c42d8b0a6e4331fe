/**
 * Kubernetes: render the seed's manifests from templates (pure), validate them
 * against the Kubernetes schemas offline, apply them with server-side apply, wait for
 * readiness, discover node address, NodePort and target pod, and carry the tunnel
 * through a port-forward where nodes are not reachable.
 */
export { systemClock, type Clock, type KubeApi, type NodeLike, type PodLike, type ServiceLike } from './api.js';
export { ClusterApi, contextNamespace, FIELD_MANAGER, kubeconfigSource, loadKubeConfig, type KubeConfigOptions } from './cluster.js';
export { accessLines, clientArgs, clientCommand, deleteDeployment, deploy, forwardTo, manifestsFor, objectsFor, type Deployed, type DeploymentMode, type DeployOptions, type Via } from './deploy.js';
export { discoverNodePort, nodeAddressOf, nodePortOf, targetPod, type NodeAddress } from './discover.js';
export { imageRef, IP_FAMILIES, LICENSE_SERVER_PLACEHOLDER, resolveParams, SERVER_TAP, TLS_MOUNT_PATH, type K8sIpFamily, type K8sParams, type K8sTransport, type ResolvedK8sParams } from './params.js';
export { startLocalForward, type LocalForward, type LocalForwardOptions, type PodStreamOpener } from './portforward.js';
export { RecordedKubeApi, type Recording } from './recorded.js';
export {
  defaultManifestDir,
  defaultTemplateDir,
  MANAGED_SELECTOR,
  manifest,
  MANIFEST_FILES,
  OBJECT_NAMES,
  renderManifests,
  RESOURCES,
  serverArgs,
  SIMULATOR_SELECTOR,
  staleManifests,
  tunnelProbes,
  scrapeAnnotations,
  METRICS_PORT_NAME,
  writeManifests,
  type K8sObject,
  type ManifestKey,
  type RenderedManifest,
} from './render.js';
export { assertValid, definitionName, loadSchema, SCHEMA_VERSIONS, type KubernetesSchema, type SchemaIssue, type SchemaVersion } from './schema.js';
export { describePod, exitCodeMeaning, podFailure, waitForPods, type WaitOptions } from './wait.js';
