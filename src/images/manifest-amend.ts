// `kiln manifest create --amend` (as `docker manifest create --amend`): the index already at the
// target (the first -t reference when pushing, else the -t tag in the --output layout directory)
// is read as one more source, and the new manifests are added to it: an entry for a platform a new
// source brings is replaced in place (as docker does; the attestation manifests that describe it
// give their place to the new image's), the others are kept in their order, then the new platforms
// follow; the index's own annotations are kept. No target yet: the index is made as without --amend.
import { access } from "node:fs/promises";
import { join } from "node:path";
import { KilnError, UsageError } from "../errors.js";
import { OciLayout } from "../image/layout.js";
import { REF_NAME_ANNOTATION } from "../image/oci.js";
import { formatPlatform } from "../image/platform.js";
import { parseTag } from "../output/oci-layout.js";
import { resolveSource, type ResolvedSource, type SourceContext, type SourceManifest } from "./manifest-sources.js";

/** Where the index to amend is: a registry reference, or a tag in a layout directory. */
export type AmendTarget = { push: string } | { layout: { dest: string; tar: boolean; tags: string[] } };

const REFERENCE_DIGEST = "vnd.docker.reference.digest";

/** The target to amend for these outputs (checked before any source is read): the first reference pushed to, else the layout's first tag. */
export function amendTarget(push: string[], layout: { dest: string; tar: boolean; tags: string[] } | undefined): AmendTarget {
  if (push.length > 0) return { push: push[0]! };
  if (!layout) throw new UsageError("USAGE", "manifest create --amend: give -t REF or --output type=oci,dest=DIR -t TAG");
  if (layout.tar) throw new UsageError("OPTION_INVALID", "manifest create --amend: the index to amend is read from a layout directory, not a tar (tar=true)");
  if (layout.tags.length === 0) throw new UsageError("USAGE", "manifest create --amend with --output: give -t TAG, the index to amend in the layout");
  return { layout };
}

/** The index (or image) already at the target, or undefined when there is none yet. */
export async function existingTarget(target: AmendTarget, ctx: SourceContext): Promise<ResolvedSource | undefined> {
  if ("push" in target) {
    try {
      return await resolveSource(target.push, ctx);
    } catch (err) {
      if (err instanceof KilnError && err.code === "REGISTRY_MANIFEST_UNKNOWN") return undefined;
      throw err;
    }
  }
  const { dest, tags } = target.layout;
  const exists = await access(join(dest, "oci-layout")).then(() => true, () => false);
  if (!exists) return undefined;
  const name = parseTag(tags[0]!).tag;
  const entry = (await (await OciLayout.open(dest)).readIndex()).manifests.find((d) => d.annotations?.[REF_NAME_ANNOTATION] === name);
  return entry ? resolveSource(`oci-layout://${dest}@${entry.digest}`, ctx) : undefined;
}

/**
 * The existing entries in their order, each image of a platform the new manifests bring replaced
 * in place by the new image (a second old image of that platform is dropped), and the attestation
 * manifests of a replaced image by the new image's (at the first one's place); then what is left
 * of the new manifests (new platforms, attestations without an old place), in their order.
 */
export function amendManifests(existing: SourceManifest[], added: SourceManifest[]): SourceManifest[] {
  const addedImages = new Map<string, SourceManifest>();
  for (const m of added) if (!m.attestation && !addedImages.has(formatPlatform(m.platform))) addedImages.set(formatPlatform(m.platform), m);
  const attestationsOf = (image: SourceManifest): SourceManifest[] => added.filter((m) => m.attestation && m.annotations?.[REFERENCE_DIGEST] === image.descriptor.digest);
  /** Old image digest → the new image that replaces it. */
  const replacedBy = new Map<string, SourceManifest>();
  for (const m of existing) {
    const by = m.attestation ? undefined : addedImages.get(formatPlatform(m.platform));
    if (by) replacedBy.set(m.descriptor.digest, by);
  }
  const placed = new Set<SourceManifest>();
  const out: SourceManifest[] = [];
  const place = (m: SourceManifest): void => {
    if (placed.has(m)) return;
    placed.add(m);
    out.push(m);
  };
  for (const m of existing) {
    if (!m.attestation) {
      const by = replacedBy.get(m.descriptor.digest);
      if (by) place(by);
      else out.push(m);
      continue;
    }
    const by = replacedBy.get(m.annotations?.[REFERENCE_DIGEST] ?? "");
    if (by) attestationsOf(by).forEach(place);
    else out.push(m);
  }
  for (const m of added) place(m);
  return out;
}
