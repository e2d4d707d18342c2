// Image references ("registry/repo:tag@digest"): parsing by distribution's reference grammar,
// Docker Hub defaults (docker.io, library/, latest), formatting and the registry API host.
import { KilnError } from "../errors.js";
import type { Digest } from "./oci.js";

export interface Reference {
  registry: string;
  repository: string;
  tag?: string;
  digest?: Digest;
}

export const DOCKER_HUB = "docker.io";
const DOCKER_HUB_API = "registry-1.docker.io";

const DOMAIN_COMPONENT = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
const DOMAIN_RE = new RegExp(
  `^(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[0-9a-fA-F:.]+\\])(?::[0-9]+)?$`,
);
const PATH_COMPONENT_RE = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG_RE = /^[\w][\w.-]{0,127}$/;
const DIGEST_RE = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$/;
const NAME_MAX = 255;

function invalid(s: string, why: string): KilnError {
  return new KilnError("REFERENCE_INVALID", `invalid reference "${s}": ${why}`);
}

/** Split "host/path" the way Docker does: the first component is a host only if it looks like one. */
function splitDomain(name: string): { registry: string; path: string } {
  const slash = name.indexOf("/");
  if (slash === -1) return { registry: DOCKER_HUB, path: name };
  const first = name.slice(0, slash);
  const looksLikeHost =
    first.includes(".") || first.includes(":") || first === "localhost" || first !== first.toLowerCase();
  if (!looksLikeHost) return { registry: DOCKER_HUB, path: name };
  return { registry: first, path: name.slice(slash + 1) };
}

/** Parse an image reference; throws a one-line KilnError for anything distribution would reject. */
export function parseReference(s: string): Reference {
  if (typeof s !== "string" || s.length === 0) throw invalid(String(s), "empty reference");
  if (/\s/.test(s)) throw invalid(s, "contains whitespace");
  let rest = s;
  let digest: Digest | undefined;
  const at = rest.indexOf("@");
  if (at !== -1) {
    const d = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST_RE.test(d)) throw invalid(s, `invalid digest "${d}"`);
    if (!d.startsWith("sha256:")) throw invalid(s, `unsupported digest algorithm in "${d}"`);
    if (!/^sha256:[0-9a-f]{64}$/.test(d)) throw invalid(s, `invalid sha256 digest "${d}"`);
    digest = d as Digest;
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(":");
  if (colon > rest.lastIndexOf("/")) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG_RE.test(tag)) throw invalid(s, `invalid tag "${tag}"`);
  }
  if (rest.length === 0) throw invalid(s, "missing repository name");
  let { registry, path } = splitDomain(rest);
  if (!DOMAIN_RE.test(registry)) throw invalid(s, `invalid registry host "${registry}"`);
  if (registry === "index.docker.io") registry = DOCKER_HUB;
  if (path.length === 0) throw invalid(s, "missing repository name");
  if (path !== path.toLowerCase()) throw invalid(s, "repository name must be lowercase");
  for (const comp of path.split("/")) {
    if (!PATH_COMPONENT_RE.test(comp)) throw invalid(s, `invalid repository path component "${comp}"`);
  }
  if (registry === DOCKER_HUB && !path.includes("/")) path = `library/${path}`;
  if (`${registry}/${path}`.length > NAME_MAX) throw invalid(s, `repository name longer than ${NAME_MAX} characters`);
  const ref: Reference = { registry, repository: path };
  if (tag !== undefined) ref.tag = tag;
  if (digest !== undefined) ref.digest = digest;
  if (ref.tag === undefined && ref.digest === undefined) ref.tag = "latest";
  return ref;
}

/** Accept either form. */
export function toReference(r: string | Reference): Reference {
  return typeof r === "string" ? parseReference(r) : r;
}

/** The fully qualified form: "docker.io/library/alpine:3.20@sha256:...". */
export function formatReference(r: Reference): string {
  let s = `${r.registry}/${r.repository}`;
  if (r.tag !== undefined) s += `:${r.tag}`;
  if (r.digest !== undefined) s += `@${r.digest}`;
  return s;
}

/** The short form Docker shows: "alpine:3.20", "user/app:1", "ghcr.io/o/app:1". */
export function familiarName(r: Reference): string {
  let name = `${r.registry}/${r.repository}`;
  if (r.registry === DOCKER_HUB) {
    name = r.repository.startsWith("library/") && r.repository.split("/").length === 2
      ? r.repository.slice("library/".length)
      : r.repository;
  }
  if (r.tag !== undefined) name += `:${r.tag}`;
  if (r.digest !== undefined) name += `@${r.digest}`;
  return name;
}

/** The host the registry API lives on (docker.io -> registry-1.docker.io). */
export function registryHost(r: Reference | string): string {
  const registry = typeof r === "string" ? r : r.registry;
  return registry === DOCKER_HUB || registry === "index.docker.io" ? DOCKER_HUB_API : registry;
}

/** What to ask the registry for: the digest when known (digest wins), else the tag. */
export function referenceTarget(r: Reference): string {
  return r.digest ?? r.tag ?? "latest";
}
