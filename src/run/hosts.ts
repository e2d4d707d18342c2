// `--add-host HOST:IP` for `kiln run` and `kiln build` (RUN steps), one parser for both: the
// entries go into the generated /etc/hosts (after localhost and the container's own name), which
// is mounted read-only and kept out of every layer like the rest of the file. `host-gateway`
// stands for an address of the host seen from the container: with `--network host` the container
// shares the host's network, so it is the host's loopback 127.0.0.1; with `--network none` there
// is no host to reach and it is refused.
import { isIP } from "node:net";
import { KilnError } from "../errors.js";

export interface ExtraHost {
  host: string;
  /** An IPv4/IPv6 address, or "host-gateway" until resolveExtraHosts() replaces it. */
  ip: string;
}

export const HOST_GATEWAY = "host-gateway";

/** One `--add-host` value: `HOST:IP` (or `HOST=IP`, as newer docker takes); IPv6 addresses may be bracketed. */
export function parseAddHost(spec: string): ExtraHost {
  const what = `--add-host ${JSON.stringify(spec)}`;
  // the host name never contains ':' or '=', the address may (IPv6): split at the first one
  const at = spec.search(/[:=]/);
  if (at <= 0 || at === spec.length - 1) throw new KilnError("OPTION_INVALID", `${what}: expected HOST:IP`);
  const host = spec.slice(0, at);
  let ip = spec.slice(at + 1);
  if (ip.startsWith("[") && ip.endsWith("]")) ip = ip.slice(1, -1);
  if (!/^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?$/.test(host)) throw new KilnError("OPTION_INVALID", `${what}: ${JSON.stringify(host)} is not a valid host name`);
  if (ip !== HOST_GATEWAY && isIP(ip) === 0) throw new KilnError("OPTION_INVALID", `${what}: ${JSON.stringify(ip)} is not an IP address (nor host-gateway)`);
  return { host, ip };
}

/** Replace host-gateway for the process's network (refused without one). */
export function resolveExtraHosts(hosts: readonly ExtraHost[], network: "host" | "none"): ExtraHost[] {
  return hosts.map((h) => {
    if (h.ip !== HOST_GATEWAY) return h;
    if (network === "none") throw new KilnError("OPTION_INVALID", `--add-host ${h.host}:${HOST_GATEWAY}: with --network none there is no host to reach`);
    return { host: h.host, ip: "127.0.0.1" };
  });
}

/** The /etc/hosts lines for the entries, in the order given. */
export function extraHostLines(hosts: readonly ExtraHost[]): string {
  return hosts.map((h) => `${h.ip}\t${h.host}\n`).join("");
}
