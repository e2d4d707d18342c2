// Independent inspection of kiln's outputs with other tools: skopeo (config, manifest, docker
// archives), umoci (unpacks a layout to a root filesystem, keeping owners as root), and a small
// OCI layout reader for index.json.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { mustRun } from "./kiln.js";
import type { TempDirs } from "./temp.js";

/** An OCI / Docker image config as skopeo prints it (`skopeo inspect --config`). */
export interface InspectedConfig {
  created?: string;
  architecture: string;
  os: string;
  variant?: string;
  author?: string;
  config?: {
    User?: string;
    ExposedPorts?: Record<string, object>;
    Env?: string[];
    Entrypoint?: string[] | null;
    Cmd?: string[] | null;
    Volumes?: Record<string, object>;
    WorkingDir?: string;
    Labels?: Record<string, string>;
    StopSignal?: string;
    ArgsEscaped?: boolean;
    Shell?: string[];
    OnBuild?: string[] | null;
    Healthcheck?: { Test: string[]; Interval?: number; Timeout?: number; StartPeriod?: number; StartInterval?: number; Retries?: number };
  };
  rootfs: { type: string; diff_ids: string[] };
  history?: Array<{ created?: string; created_by?: string; empty_layer?: boolean; comment?: string }>;
}

/** `skopeo inspect` (without --config) of an image. */
export interface InspectedImage {
  Digest: string;
  Created?: string;
  Architecture: string;
  Os: string;
  Layers: string[];
  Labels?: Record<string, string> | null;
  Env?: string[];
}

export interface RawManifest {
  schemaVersion: number;
  mediaType?: string;
  config: { mediaType: string; digest: string; size: number };
  layers: Array<{ mediaType: string; digest: string; size: number }>;
  annotations?: Record<string, string>;
}

/** The skopeo transport reference of a layout dir + tag. */
export function ociRef(layoutDir: string, tag: string): string {
  return `oci:${layoutDir}:${tag}`;
}

/**
 * `skopeo inspect --config --raw oci:DIR:TAG` (the config blob exactly as stored: plain
 * `--config` converts to the OCI struct and drops Docker fields such as Healthcheck, Shell and
 * OnBuild) and `skopeo inspect oci:DIR:TAG`.
 */
export async function skopeoInspect(layoutDir: string, tag: string): Promise<{ config: InspectedConfig; image: InspectedImage }> {
  return skopeoInspectRef(ociRef(layoutDir, tag));
}

/** The same for any skopeo reference (`oci-archive:F:TAG`, `docker-archive:F`). */
export async function skopeoInspectRef(ref: string): Promise<{ config: InspectedConfig; image: InspectedImage }> {
  const [c, i] = await Promise.all([mustRun("skopeo", ["inspect", "--config", "--raw", ref]), mustRun("skopeo", ["inspect", ref])]);
  return { config: JSON.parse(c.stdout) as InspectedConfig, image: JSON.parse(i.stdout) as InspectedImage };
}

/** `skopeo inspect --raw REF`: the manifest exactly as stored. */
export async function skopeoRaw(ref: string): Promise<RawManifest> {
  const r = await mustRun("skopeo", ["inspect", "--raw", ref]);
  return JSON.parse(r.stdout) as RawManifest;
}

/** `umoci unpack --image DIR:TAG BUNDLE`; returns BUNDLE/rootfs (a temp dir owned by `temps`). */
export async function umociUnpack(temps: TempDirs, layoutDir: string, tag: string): Promise<string> {
  const parent = await temps.make("kiln-umoci-");
  const bundle = join(parent, "bundle");
  await mustRun("umoci", ["unpack", "--image", `${layoutDir}:${tag}`, bundle]);
  return join(bundle, "rootfs");
}

export interface LayoutIndex {
  schemaVersion: number;
  manifests: Array<{ mediaType: string; digest: string; size: number; annotations?: Record<string, string> }>;
}

export async function readIndex(layoutDir: string): Promise<LayoutIndex> {
  return JSON.parse(await readFile(join(layoutDir, "index.json"), "utf8")) as LayoutIndex;
}

/** Tag (org.opencontainers.image.ref.name) -> manifest digest in a layout. */
export async function layoutTags(layoutDir: string): Promise<Record<string, string>> {
  const idx = await readIndex(layoutDir);
  const out: Record<string, string> = {};
  for (const m of idx.manifests) {
    const name = m.annotations?.["org.opencontainers.image.ref.name"];
    if (name !== undefined) out[name] = m.digest;
  }
  return out;
}
