// What attestations a build was asked for, parsed from buildx's spellings: `--provenance=true|false|
// mode=min|max`, `--sbom=true|false` and `--attest type=provenance|sbom[,mode=...][,disabled=true]`.
// Anything else is a UsageError naming the flag.
import { UsageError } from "../errors.js";

export type ProvenanceMode = "min" | "max";

export interface AttestRequest {
  /** SLSA provenance of this mode; absent = none. */
  provenance?: ProvenanceMode;
  /** An SPDX SBOM of the final image. */
  sbom?: boolean;
}

function csv(value: string, flag: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of value.split(",")) {
    const eq = part.indexOf("=");
    if (eq <= 0) throw new UsageError("OPTION_INVALID", `${flag}: "${part}" is not KEY=VALUE`);
    out[part.slice(0, eq).trim().toLowerCase()] = part.slice(eq + 1).trim();
  }
  return out;
}

function bool(v: string, flag: string): boolean {
  if (v === "true" || v === "1") return true;
  if (v === "false" || v === "0") return false;
  throw new UsageError("OPTION_INVALID", `${flag}: "${v}" is not true or false`);
}

function mode(v: string | undefined, flag: string): ProvenanceMode {
  if (v === undefined || v === "min") return "min";
  if (v === "max") return "max";
  throw new UsageError("OPTION_INVALID", `${flag}: mode must be min or max, not "${v}"`);
}

function provenanceValue(fields: Record<string, string>, flag: string): ProvenanceMode | undefined {
  for (const k of Object.keys(fields)) {
    if (!["type", "mode", "disabled", "builder-id", "version"].includes(k)) throw new UsageError("OPTION_INVALID", `${flag}: unknown provenance option "${k}"`);
  }
  if (fields.disabled !== undefined && bool(fields.disabled, flag)) return undefined;
  return mode(fields.mode, flag);
}

/** `--provenance VALUE`: true, false, or mode=min|max[,...]. */
export function parseProvenance(value: string): ProvenanceMode | undefined {
  const flag = "--provenance";
  if (!value.includes("=")) return bool(value, flag) ? "min" : undefined;
  return provenanceValue(csv(value, flag), flag);
}

/** `--sbom VALUE`: true, false, or generator/options buildx takes (only true/false and disabled are honoured). */
export function parseSbom(value: string): boolean {
  const flag = "--sbom";
  if (!value.includes("=")) return bool(value, flag);
  const fields = csv(value, flag);
  for (const k of Object.keys(fields)) {
    if (!["type", "disabled"].includes(k)) throw new UsageError("OPTION_INVALID", `${flag}: unsupported SBOM option "${k}" (kiln uses its own scanner)`);
  }
  return !(fields.disabled !== undefined && bool(fields.disabled, flag));
}

/** Fold `--provenance`, `--sbom` and every `--attest` into one request (later flags win). */
export function attestRequest(provenance: string | undefined, sbom: string | undefined, attests: string[]): AttestRequest {
  const req: AttestRequest = {};
  const setProvenance = (m: ProvenanceMode | undefined): void => {
    if (m) req.provenance = m;
    else delete req.provenance;
  };
  if (provenance !== undefined) setProvenance(parseProvenance(provenance));
  if (sbom !== undefined && parseSbom(sbom)) req.sbom = true;
  for (const a of attests) {
    const flag = "--attest";
    const fields = csv(a, flag);
    switch (fields.type) {
      case "provenance":
        setProvenance(provenanceValue(fields, flag));
        break;
      case "sbom":
        if (parseSbom(a)) req.sbom = true;
        else delete req.sbom;
        break;
      default:
        throw new UsageError("OPTION_INVALID", `${flag}: type must be provenance or sbom${fields.type ? `, not "${fields.type}"` : ""}`);
    }
  }
  return req;
}

/** Whether anything is asked for. */
export function wantsAttestations(req: AttestRequest | undefined): boolean {
  return req !== undefined && (req.provenance !== undefined || req.sbom === true);
}
