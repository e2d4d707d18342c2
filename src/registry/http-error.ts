// What a registry's error answer says, as data: the one-line detail ("404 MANIFEST_UNKNOWN:
// manifest unknown"), the distribution spec's error codes, and the repository a /v2/ URL names;
// `statusError` turns an unexpected status into a RegistryError carrying all of it; `failureReason`
// tells why an operation failed in a few words safe to print (no URL, header or credential).
import { KilnError, RegistryError, type KilnErrorCode } from "../errors.js";

interface ErrorBody {
  errors?: Array<{ code?: unknown; message?: unknown }>;
}

function parseErrors(body: Buffer): Array<{ code?: string; message?: string }> | undefined {
  try {
    const parsed = JSON.parse(body.toString("utf8")) as ErrorBody;
    if (!Array.isArray(parsed.errors) || parsed.errors.length === 0) return undefined;
    return parsed.errors.map((e) => ({
      ...(typeof e?.code === "string" ? { code: e.code } : {}),
      ...(typeof e?.message === "string" ? { message: e.message } : {}),
    }));
  } catch {
    return undefined;
  }
}

/** "STATUS CODE: message; ..." from a registry's JSON error body, else its first line. */
export function errorDetail(status: number, body: Buffer): string {
  const errors = parseErrors(body);
  if (errors) return `${status} ${errors.map((e) => [e.code, e.message].filter(Boolean).join(": ")).join("; ")}`;
  const first = body.toString("utf8").trim().split("\n")[0]?.slice(0, 200) ?? "";
  return first ? `${status} ${first}` : `${status}`;
}

/** The `errors[].code` values of a registry's JSON error body (empty when it has none). */
export function registryErrorCodes(body: Buffer): string[] {
  return (parseErrors(body) ?? []).map((e) => e.code).filter((c): c is string => c !== undefined);
}

/** The repository a distribution API path names ("" for /v2/ itself or a foreign URL). */
export function repositoryOf(url: URL | string): string {
  const path = typeof url === "string" ? url : url.pathname;
  const m = /^\/v2\/(.+?)\/(?:manifests|blobs|tags|referrers)\//.exec(path);
  return m ? m[1]! : "";
}

/** The RegistryError for an unexpected status: its code from the status (and the caller's choice). */
export function statusError(message: string, status: number, body: Buffer, where: { registry: string; url: URL | string }, code?: KilnErrorCode): RegistryError {
  return new RegistryError(code ?? "REGISTRY_HTTP", message, { status, registry: where.registry, repository: repositoryOf(where.url), codes: registryErrorCodes(body) });
}

/** An identifier-like code (a registry's error code, a system or TLS error code): nothing a server could hide a secret or a URL in. */
const CODE_WORD = /^[A-Z][A-Z0-9_]{1,63}$/;

/** The first system code (ECONNREFUSED, UND_ERR_SOCKET, CERT_HAS_EXPIRED, ...) along an error's cause chain. */
function systemCode(err: unknown): string | undefined {
  for (let e = err, depth = 0; e && typeof e === "object" && depth < 8; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (!(e instanceof KilnError) && typeof code === "string" && CODE_WORD.test(code)) return code;
  }
  return undefined;
}

/**
 * Why a registry operation failed, in a few words made only of a status, codes and fixed text
 * ("HTTP 503", "HTTP 404 MANIFEST_UNKNOWN", "HTTP 401: authentication required", "unreachable:
 * ECONNREFUSED", "timed out", "BLOB_DIGEST_MISMATCH"): never a URL, a header or a credential.
 */
export function failureReason(err: unknown): string {
  if (err instanceof RegistryError) {
    const codes = err.codes.filter((c) => CODE_WORD.test(c)).slice(0, 3);
    const status = [`HTTP ${err.status}`, ...(codes.length > 0 ? [codes.join(", ")] : [])].join(" ");
    if (err.code === "REGISTRY_AUTH") return `${status}: authentication required`;
    if (err.code === "REGISTRY_DENIED") return `${status}: access denied`;
    return status;
  }
  if (err instanceof KilnError) {
    const sys = systemCode(err);
    if (err.code === "REGISTRY_UNREACHABLE") return sys ? `unreachable: ${sys}` : "unreachable";
    if (err.code === "REGISTRY_TIMEOUT") return "timed out";
    return sys ? `${err.code}: ${sys}` : err.code;
  }
  return systemCode(err) ?? "failed";
}
