// Options shared by every registry operation (pull, push, login) and the progress event shape.
import type { Digest } from "../image/oci.js";
import type { RegistryTimeouts } from "./timeouts.js";
import type { MirrorMap } from "./mirrors.js";

/** One blob's transfer progress: a structured event (also a BuildEvent member). */
export interface TransferProgress {
  type: "pull-progress" | "push-progress";
  kind: "push" | "pull";
  digest: Digest;
  /** Total bytes of the blob. */
  total: number;
  /** Bytes sent/received so far. */
  bytes: number;
  /** Average bytes per second since this blob's transfer started. */
  rate: number;
  /** "progress" while streaming; then one of the terminal states. */
  state: "progress" | "done" | "exists" | "mounted";
}

export interface RetryOptions {
  /** Total attempts, including the first (default 5). */
  attempts?: number;
  /** First backoff delay (default 200 ms); doubles each attempt, with jitter. */
  baseDelayMs?: number;
  /** Cap on one backoff delay and on a Retry-After wait (default 10 s). */
  maxDelayMs?: number;
}

export interface RegistryOptions {
  /** Hosts ("host:port") reached over plain HTTP (loopback always may be). */
  insecureRegistries?: string[];
  /** Extra CA bundle (PEM) trusted for registry TLS; SSL_CERT_FILE is used when unset. */
  caFile?: string;
  /** Docker config directory (like DOCKER_CONFIG) or a path to a config.json. */
  dockerConfig?: string;
  /** A podman/containers auth.json (like REGISTRY_AUTH_FILE). */
  authFile?: string;
  /** `--creds USER:PASS`: used for these registries ("host[:port]") before any stored credentials, never sent elsewhere. */
  credentials?: { username: string; password: string; registries: string[] };
  retry?: RetryOptions;
  /** Pull mirrors by the registry they stand in for (tried in order, then the origin). */
  mirrors?: MirrorMap;
  /** Connect, idle and total limits of every request (see DEFAULT_TIMEOUTS). */
  timeouts?: RegistryTimeouts;
  /** When set, blobs are uploaded in PATCH chunks of this many bytes. */
  chunkSize?: number;
  /** Blobs transferred at once (default 4). */
  concurrency?: number;
  /** Structured per-blob progress (bytes done/total), also reported as pull-progress/push-progress build events. */
  onProgress?: (ev: TransferProgress) => void;
  /** One-line warnings (a pull mirror failed and the next endpoint is used); a build reports them as "warning" events. */
  onWarning?: (message: string) => void;
  /** Cancels the operation, mid-blob too: it rejects with an AbortError whose cause is the signal's reason. */
  signal?: AbortSignal;
}
