// The SPDX 2.3 JSON document (the in-toto predicate `https://spdx.dev/Document`) listing the
// packages kiln's scanners found in an image: one package per finding with its purl, version,
// declared license where the database has one, and a DESCRIBES relationship from the document.
// Deterministic: the same packages, name and time give the same bytes; spdxStatementJSON makes
// those bytes from the packages' JSON text made once (the SBOM cache keeps it: sbom-cache.ts).
import { KilnError } from "../errors.js";
import type { FoundPackage } from "./packages.js";
import { statement, type Subject } from "./statement.js";

export const SPDX_PREDICATE = "https://spdx.dev/Document";

/** A license string SPDX accepts as a simple expression; anything else is NOASSERTION. */
function licenseExpression(l: string | undefined): string {
  if (!l) return "NOASSERTION";
  return /^[A-Za-z0-9.+-]+(\s+(AND|OR|WITH)\s+[A-Za-z0-9.+-]+)*$/.test(l.trim()) || /^\(.*\)$/.test(l.trim()) && /^[A-Za-z0-9.+()\s-]+$/.test(l) ? l.trim() : "NOASSERTION";
}

const SOURCE_INFO: Record<FoundPackage["type"], string> = {
  deb: "acquired package info from DPKG DB",
  apk: "acquired package info from APK DB",
  rpm: "acquired package info from RPM DB",
  npm: "acquired package info from installed node module manifest file or package-lock.json",
  pypi: "acquired package info from installed python package manifest file",
  golang: "acquired package info from go module information in a binary",
};

export interface SpdxInput {
  /** What the document describes, e.g. the image's name or digest. */
  name: string;
  /** Unique per image: the document namespace URI. */
  namespace: string;
  created: Date;
  toolVersion: string;
  packages: FoundPackage[];
}

/** The SPDX packages of the findings, and the document's DESCRIBES relationship to each. */
function spdxPackages(found: FoundPackage[]): { packages: Array<Record<string, unknown> & { SPDXID: string }>; relationships: Array<Record<string, unknown>> } {
  const packages = found.map((p, i) => ({
    name: p.name,
    SPDXID: `SPDXRef-Package-${p.type}-${i + 1}`,
    versionInfo: p.version,
    downloadLocation: "NOASSERTION",
    filesAnalyzed: false,
    licenseConcluded: "NOASSERTION",
    licenseDeclared: licenseExpression(p.license),
    copyrightText: "NOASSERTION",
    sourceInfo: `${SOURCE_INFO[p.type]}: ${p.source}`,
    externalRefs: [{ referenceCategory: "PACKAGE-MANAGER", referenceType: "purl", referenceLocator: p.purl }],
  }));
  return { packages, relationships: packages.map((p) => ({ spdxElementId: "SPDXRef-DOCUMENT", relationshipType: "DESCRIBES", relatedSpdxElement: p.SPDXID })) };
}

export function spdxDocument(input: SpdxInput): Record<string, unknown> {
  const { packages, relationships } = spdxPackages(input.packages);
  return {
    spdxVersion: "SPDX-2.3",
    dataLicense: "CC0-1.0",
    SPDXID: "SPDXRef-DOCUMENT",
    name: input.name,
    documentNamespace: input.namespace,
    creationInfo: {
      created: input.created.toISOString().replace(/\.\d{3}Z$/, "Z"),
      creators: [`Tool: kiln-${input.toolVersion}`],
    },
    packages,
    relationships,
  };
}

/** A document's `packages` and `relationships` arrays as JSON text (UTF-8 bytes): all of it that depends on the findings. */
export interface SpdxPackagesJSON {
  packages: Buffer;
  relationships: Buffer;
}

export function spdxPackagesJSON(found: FoundPackage[]): SpdxPackagesJSON {
  const { packages, relationships } = spdxPackages(found);
  return { packages: Buffer.from(JSON.stringify(packages), "utf8"), relationships: Buffer.from(JSON.stringify(relationships), "utf8") };
}

/**
 * The SPDX statement's text before its packages (the statement, the predicate and the document up
 * to `"packages":`): what the document says of itself, without its findings (spdxStatementJSON).
 */
export function spdxStatementHead(subjects: Subject[], input: Omit<SpdxInput, "packages">): string {
  const empty = JSON.stringify(statement(subjects, SPDX_PREDICATE, spdxDocument({ ...input, packages: [] })));
  // the document's last two members, then the predicate's and the statement's closing braces
  const tail = '"packages":[],"relationships":[]}}';
  if (!empty.endsWith(tail)) throw new KilnError("INTERNAL", "internal: the SPDX statement does not end with its packages");
  return `${empty.slice(0, -tail.length)}"packages":`;
}

/**
 * The in-toto statement of an SPDX document as JSON text (UTF-8 bytes, in parts: their
 * concatenation is the statement, never made, as the store writes parts), the findings given as
 * their JSON text: the same bytes as JSON.stringify(statement(subjects, SPDX_PREDICATE,
 * spdxDocument(input))), without serializing or encoding the packages again.
 */
export function spdxStatementJSON(subjects: Subject[], input: Omit<SpdxInput, "packages">, found: SpdxPackagesJSON, head = spdxStatementHead(subjects, input)): Buffer[] {
  return [Buffer.from(head, "utf8"), found.packages, Buffer.from(',"relationships":', "utf8"), found.relationships, Buffer.from("}}", "utf8")];
}
