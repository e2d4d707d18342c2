// The SPDX 2.3 JSON document (the in-toto predicate `https://spdx.dev/Document`) listing the
// packages kiln's scanners found in an image: one package per finding with its purl, version,
// declared license where the database has one, and a DESCRIBES relationship from the document.
// Deterministic: the same packages, name and time give the same bytes.
import type { FoundPackage } from "./packages.js";

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

export function spdxDocument(input: SpdxInput): Record<string, unknown> {
  const packages = input.packages.map((p, i) => ({
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
    relationships: packages.map((p) => ({ spdxElementId: "SPDXRef-DOCUMENT", relationshipType: "DESCRIBES", relatedSpdxElement: p.SPDXID })),
  };
}
