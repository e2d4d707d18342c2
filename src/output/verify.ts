// `kiln verify`: checks an OCI image layout end to end and reports the FIRST problem as a
// KilnError: blob digests and sizes, document shapes and media types, config diff_ids against
// the decompressed layers, and history/layer counts; and that every attestation manifest of an
// index names an image of that index and holds statements about that image only
// (ATTESTATION_INVALID, image/attestation-entry.ts).
import { createReadStream } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { KilnError } from "../errors.js";
import { decompressStream } from "../layer/compress.js";
import { HashCounter } from "../store/blob-store.js";
import { OciLayout } from "../image/layout.js";
import { layoutBlobs } from "../image/source.js";
import { isAttestationEntry, readAttestationManifest } from "../image/attestation-entry.js";
import { MediaType, isDigest, isIndexType, type Descriptor, type Digest, type ImageConfig, type Index, type Manifest } from "../image/oci.js";

const OCI_LAYER_PREFIX = "application/vnd.oci.image.layer.";
const DOCKER_LAYER_PREFIX = "application/vnd.docker.image.rootfs.";
const IMAGE_CONFIG_TYPES = new Set<string>([MediaType.ociConfig, MediaType.dockerConfig]);

const sink = (): Writable => new Writable({ write: (_c, _e, cb) => cb() });

class LayoutVerifier {
  private readonly verified = new Map<Digest, number>();
  private readonly diffChecked = new Set<Digest>();
  private readonly manifestsSeen = new Set<Digest>();

  constructor(private readonly dir: string) {}

  private fail(msg: string): never {
    throw new KilnError("VERIFY_FAILED", `${this.dir}: ${msg}`);
  }

  private path(digest: Digest): string {
    return join(this.dir, "blobs", "sha256", digest.slice("sha256:".length));
  }

  get manifests(): number {
    return this.manifestsSeen.size;
  }

  get blobCount(): number {
    return this.verified.size;
  }

  private checkDescriptor(d: unknown, where: string): asserts d is Descriptor {
    const desc = d as Descriptor;
    if (!desc || typeof desc !== "object") this.fail(`${where}: descriptor is not an object`);
    if (typeof desc.mediaType !== "string" || desc.mediaType === "") this.fail(`${where}: descriptor has no mediaType`);
    if (typeof desc.digest !== "string" || !isDigest(desc.digest)) this.fail(`${where}: invalid digest ${JSON.stringify(desc.digest)}`);
    if (!Number.isSafeInteger(desc.size) || desc.size < 0) this.fail(`${where}: invalid size ${JSON.stringify(desc.size)}`);
  }

  /** Hash a blob and check its size; when `mediaType` is a layer type also return its diffID. */
  private async checkBlob(d: Descriptor, where: string, layer: boolean): Promise<Digest | undefined> {
    let st;
    try {
      st = await stat(this.path(d.digest));
    } catch {
      if (d.urls && d.urls.length > 0) return undefined; // non-distributable layer stored elsewhere
      this.fail(`${where}: blob ${d.digest} is missing`);
    }
    if (st.size !== d.size) this.fail(`${where}: blob ${d.digest} is ${st.size} bytes, its descriptor says ${d.size}`);
    const blobHash = new HashCounter();
    let diffHash: HashCounter | undefined;
    try {
      if (layer) {
        diffHash = new HashCounter();
        await pipeline(createReadStream(this.path(d.digest)), blobHash, decompressStream(d.mediaType), diffHash, sink());
      } else {
        await pipeline(createReadStream(this.path(d.digest)), blobHash, sink());
      }
    } catch (err) {
      if (err instanceof KilnError) this.fail(`${where}: ${err.message}`);
      // A corrupt blob often fails to decompress; report the digest mismatch when that is the cause.
      const plain = new HashCounter();
      await pipeline(createReadStream(this.path(d.digest)), plain, sink());
      const actual = plain.digest();
      if (actual !== d.digest) this.fail(`${where}: blob ${d.digest} is corrupt (its content hashes to ${actual})`);
      this.fail(`${where}: layer ${d.digest} does not decompress as ${d.mediaType}: ${(err as Error).message}`);
    }
    const actual = blobHash.digest();
    if (actual !== d.digest) this.fail(`${where}: blob ${d.digest} is corrupt (its content hashes to ${actual})`);
    this.verified.set(d.digest, d.size);
    return diffHash?.digest();
  }

  private async readDoc<T>(d: Descriptor, where: string): Promise<T> {
    await this.checkBlob(d, where, false);
    try {
      return JSON.parse(await readFile(this.path(d.digest), "utf8")) as T;
    } catch {
      this.fail(`${where}: blob ${d.digest} is not valid JSON`);
    }
  }

  async verify(): Promise<void> {
    let marker: { imageLayoutVersion?: unknown };
    try {
      marker = JSON.parse(await readFile(join(this.dir, "oci-layout"), "utf8")) as { imageLayoutVersion?: unknown };
    } catch {
      this.fail("oci-layout file missing or not valid JSON");
    }
    if (marker?.imageLayoutVersion !== "1.0.0") this.fail(`oci-layout: unsupported imageLayoutVersion ${JSON.stringify(marker?.imageLayoutVersion)}`);
    let index: Index;
    try {
      index = JSON.parse(await readFile(join(this.dir, "index.json"), "utf8")) as Index;
    } catch {
      this.fail("index.json missing or not valid JSON");
    }
    await this.checkIndex(index, "index.json");
  }

  private async checkIndex(index: Index, where: string): Promise<void> {
    if (!index || typeof index !== "object" || index.schemaVersion !== 2) this.fail(`${where}: schemaVersion must be 2`);
    if (!Array.isArray(index.manifests)) this.fail(`${where}: manifests must be an array`);
    index.manifests.forEach((d, i) => this.checkDescriptor(d, `${where}: manifests[${i}]`));
    for (let i = 0; i < index.manifests.length; i++) {
      const d = index.manifests[i]!;
      const at = `${where}: manifests[${i}] ${d.digest}`;
      if (isIndexType(d.mediaType)) {
        const child = await this.readDoc<Index>(d, at);
        if (child?.mediaType !== undefined && child.mediaType !== d.mediaType) {
          this.fail(`${at}: index says mediaType ${child.mediaType}, its descriptor says ${d.mediaType}`);
        }
        await this.checkIndex(child, `index ${d.digest}`);
      } else if (d.mediaType === MediaType.ociManifest || d.mediaType === MediaType.dockerManifest) {
        if (this.manifestsSeen.has(d.digest)) continue;
        const m = await this.readDoc<Manifest>(d, at);
        await this.checkManifest(m, d, `manifest ${d.digest}`);
      } else {
        await this.checkBlob(d, at, false); // unknown artifact: content integrity only
      }
    }
    // Attestation manifests (their blobs checked above): attached to an image of this index, about it alone.
    const blobs = layoutBlobs(new OciLayout(this.dir));
    for (const d of index.manifests.filter(isAttestationEntry)) await readAttestationManifest(blobs, index, d);
  }

  private async checkManifest(m: Manifest, desc: Descriptor, where: string): Promise<void> {
    this.manifestsSeen.add(desc.digest);
    if (!m || typeof m !== "object" || m.schemaVersion !== 2) this.fail(`${where}: schemaVersion must be 2`);
    if (m.mediaType !== undefined && m.mediaType !== desc.mediaType) {
      this.fail(`${where}: manifest says mediaType ${m.mediaType}, its descriptor says ${desc.mediaType}`);
    }
    if (desc.mediaType === MediaType.dockerManifest && m.mediaType !== MediaType.dockerManifest) {
      this.fail(`${where}: Docker schema2 manifest must carry mediaType ${MediaType.dockerManifest}`);
    }
    this.checkDescriptor(m.config, `${where}: config`);
    if (!Array.isArray(m.layers)) this.fail(`${where}: layers must be an array`);
    m.layers.forEach((l, i) => this.checkDescriptor(l, `${where}: layers[${i}]`));
    const docker = desc.mediaType === MediaType.dockerManifest;
    // BuildKit's attestation manifests carry an image config for compatibility but in-toto layers.
    const attestation = isAttestationEntry(desc);
    const isImage = IMAGE_CONFIG_TYPES.has(m.config.mediaType) && !attestation;
    if (isImage) {
      const wantConfig = docker ? MediaType.dockerConfig : MediaType.ociConfig;
      if (m.config.mediaType !== wantConfig) this.fail(`${where}: config mediaType ${m.config.mediaType} mixed into a ${docker ? "Docker" : "OCI"} manifest`);
      m.layers.forEach((l, i) => {
        const ok = docker ? l.mediaType.startsWith(DOCKER_LAYER_PREFIX) : l.mediaType.startsWith(OCI_LAYER_PREFIX);
        if (!ok) this.fail(`${where}: layers[${i}] mediaType ${l.mediaType} mixed into a ${docker ? "Docker" : "OCI"} manifest`);
      });
    } else if (docker) {
      this.fail(`${where}: Docker manifest has config mediaType ${m.config.mediaType}`);
    }
    if (!isImage) {
      // An artifact (attestation, signature, ...): check its blobs' integrity only.
      await this.checkBlob(m.config, `${where}: config`, false);
      for (let i = 0; i < m.layers.length; i++) await this.checkBlob(m.layers[i]!, `${where}: layers[${i}]`, false);
      return;
    }
    const config = await this.readDoc<ImageConfig>(m.config, `${where}: config ${m.config.digest}`);
    const cw = `config ${m.config.digest}`;
    if (!config || typeof config !== "object") this.fail(`${cw}: not a JSON object`);
    if (typeof config.architecture !== "string" || config.architecture === "") this.fail(`${cw}: architecture missing`);
    if (typeof config.os !== "string" || config.os === "") this.fail(`${cw}: os missing`);
    if (!config.rootfs || config.rootfs.type !== "layers" || !Array.isArray(config.rootfs.diff_ids)) {
      this.fail(`${cw}: rootfs must be {type: "layers", diff_ids: [...]}`);
    }
    const diffIDs = config.rootfs.diff_ids;
    diffIDs.forEach((id, i) => {
      if (typeof id !== "string" || !isDigest(id)) this.fail(`${cw}: rootfs.diff_ids[${i}] is not a sha256 digest`);
    });
    if (diffIDs.length !== m.layers.length) this.fail(`${cw}: ${diffIDs.length} diff_ids for ${m.layers.length} layers`);
    if (config.history !== undefined) {
      if (!Array.isArray(config.history)) this.fail(`${cw}: history must be an array`);
      const nonEmpty = config.history.filter((h) => !h?.empty_layer).length;
      if (nonEmpty !== m.layers.length) this.fail(`${cw}: ${nonEmpty} non-empty history entries for ${m.layers.length} layers`);
    }
    for (let i = 0; i < m.layers.length; i++) {
      const l = m.layers[i]!;
      const key = `${l.digest}|${diffIDs[i]}` as Digest;
      if (this.diffChecked.has(key)) continue;
      const diffID = await this.checkBlob(l, `${where}: layers[${i}]`, true);
      if (diffID !== undefined && diffID !== diffIDs[i]) {
        this.fail(`${where}: layers[${i}] ${l.digest} decompresses to ${diffID}, config diff_ids[${i}] says ${diffIDs[i]}`);
      }
      this.diffChecked.add(key);
    }
  }
}

/** Verify the OCI layout at `dir`; throws a KilnError naming the first problem found. */
export async function verifyLayout(dir: string): Promise<{ manifests: number; blobs: number }> {
  const v = new LayoutVerifier(dir);
  await v.verify();
  return { manifests: v.manifests, blobs: v.blobCount };
}
