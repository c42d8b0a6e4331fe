import data from '../../metadata.json' with { type: 'json' };

/**
 * Versions and image names come from one file, `metadata.json` at the repository
 * root, as the seed's `metadata.ini` does; nothing else repeats them. Imported (not
 * read at run time) so the bundled `ctun` inside the images carries it too.
 */
export interface Metadata {
  ctunVersion: string;
  veosVersion: string;
  veosRelease: string;
  defaultPort: number;
  /** Port of `--metrics` (Prometheus, /healthz, /readyz, /status) in deployments and examples. */
  metricsPort: number;
  images: {
    localServer: string;
    separateServer: string;
    localClient: string;
    separateClient: string;
    veos: string;
    veosCtun: string;
  };
}

export const metadata: Metadata = data;
