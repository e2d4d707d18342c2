// The real CNCF distribution registry for end-to-end tests: the same starter the registry tests
// use (plain HTTP on 127.0.0.1, filesystem storage in a temp dir, an access log to inspect).
export { startRegistry, type RunningRegistry as LocalRegistry } from "../registry/harness.js";
