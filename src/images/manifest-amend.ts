// `kiln manifest create --amend` (as `docker manifest create --amend`): the index already at the
// target (the first -t reference when pushing, else the -t tag in the --output layout directory)
// is read as one more source, and the new manifests are added to it: an entry for a platform a new
// source brings is replaced (with the attestation manifests that describe it), the others are kept
// in their order, then the new ones follow; the index's own annotations are kept. No target yet:
// the index is made as without --amend.
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

/** The existing entries a new platform does not replace (nor their attestations), then the new manifests. */
export function amendManifests(existing: SourceManifest[], added: SourceManifest[]): SourceManifest[] {
  const platforms = new Set(added.filter((m) => !m.attestation).map((m) => formatPlatform(m.platform)));
  const replaced = new Set(existing.filter((m) => !m.attestation && platforms.has(formatPlatform(m.platform))).map((m) => m.descriptor.digest as string));
  const kept = existing.filter((m) => (m.attestation ? !replaced.has(m.annotations?.[REFERENCE_DIGEST] ?? "") : !replaced.has(m.descriptor.digest)));
  return [...kept, ...added];
}
