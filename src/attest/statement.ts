// in-toto Statement v1 values (https://in-toto.io/Statement/v1): the envelope every kiln
// attestation is stored in, its subject the image manifest it speaks about.
import type { Digest } from "../image/oci.js";

export { IN_TOTO_MEDIA_TYPE, PREDICATE_TYPE_ANNOTATION } from "../image/attestation-entry.js";
export const IN_TOTO_STATEMENT = "https://in-toto.io/Statement/v1";

export interface Subject {
  name: string;
  digest: Record<string, string>;
}

export interface Statement<P = unknown> {
  _type: typeof IN_TOTO_STATEMENT;
  subject: Subject[];
  predicateType: string;
  predicate: P;
}

/** The subjects of an image: one per name (`pkg:docker/NAME@TAG?platform=...`), or "_" when unnamed, as BuildKit writes them. */
export function imageSubjects(manifest: Digest, names: string[], platform: string): Subject[] {
  const digest = { sha256: manifest.slice("sha256:".length) };
  const q = `?platform=${encodeURIComponent(platform)}`;
  const out = names.map((n) => ({ name: `pkg:docker/${purlName(n)}${q}`, digest }));
  return out.length > 0 ? out : [{ name: "_", digest }];
}

/** docker purl path: "repo/name@tag" (the tag after the last colon past the last slash). */
function purlName(ref: string): string {
  const slash = ref.lastIndexOf("/");
  const colon = ref.lastIndexOf(":");
  if (ref.includes("@")) return ref;
  return colon > slash ? `${ref.slice(0, colon)}@${ref.slice(colon + 1)}` : `${ref}@latest`;
}

export function statement<P>(subject: Subject[], predicateType: string, predicate: P): Statement<P> {
  return { _type: IN_TOTO_STATEMENT, subject, predicateType, predicate };
}
