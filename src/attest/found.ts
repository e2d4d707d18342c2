// What every SBOM scanner returns: one found package with its purl (package-url spec), the
// purl encoding the scanners share, and where the package was found.

export type PackageType = "deb" | "apk" | "rpm" | "npm" | "pypi" | "golang";

export interface FoundPackage {
  type: PackageType;
  name: string;
  version: string;
  arch?: string;
  license?: string;
  purl: string;
  /** Where it was found, e.g. "/var/lib/dpkg/status". */
  source: string;
  /** npm: the directory it is installed at (relative to "/"), which tells one install from another. */
  location?: string;
}

/** A purl component: percent-encoded as the package-url spec asks (":" left as is; "!'()*", which encodeURIComponent keeps, encoded too). */
export function enc(s: string): string {
  return encodeURIComponent(s).replace(/%3A/gi, ":").replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** pkg:npm/NAME@VERSION, a scope the purl namespace ("@" encoded as %40). */
export function npmPurl(name: string, version: string): string {
  const slash = name.indexOf("/");
  const purlName = name.startsWith("@") && slash > 0 ? `${enc(name.slice(0, slash))}/${enc(name.slice(slash + 1))}` : enc(name);
  return `pkg:npm/${purlName}@${enc(version)}`;
}
