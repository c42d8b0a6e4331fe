/**
 * The supply chain of the images: a bill of materials (CycloneDX; SPDX on request) for every image,
 * made at build time from the image's own files, and signed bundles verified on load.
 */
export * from './inventory.js';
export * from './sbom.js';
export * from './sign.js';
export * from './spdx.js';
export * from './stamp.js';
