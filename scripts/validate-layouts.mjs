#!/usr/bin/env node
// Validates OCI image layouts against the OCI image-spec JSON schemas (draft-04, via ajv +
// ajv-draft-04): oci-layout, index.json, and every manifest, index and config blob they reach.
//
//   node scripts/validate-layouts.mjs <image-spec-schema-dir> [LAYOUT_DIR...]
//
// With no LAYOUT_DIR, builds sample layouts with kiln's own library (writeLayer + materialize +
// writeOciLayout, OCI and Docker formats) and, when the CLI is compiled (dist/cli/main.js), runs
// `node bin/kiln build` on each testdata/examples/*/Dockerfile; then validates all of them. Prints one line per document,
// then `N passed, N failed`; exits 1 when anything failed.
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { Readable } from "node:stream";
import { fileURLToPath, pathToFileURL } from "node:url";
import Ajv from "ajv-draft-04";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "..");

function usage(msg) {
  if (msg) console.error(msg);
  console.error("usage: node scripts/validate-layouts.mjs <image-spec-schema-dir> [LAYOUT_DIR...]");
  process.exit(2);
}

/** Load every *.json schema in `dir` under a base URL so their relative $refs resolve. */
function loadSchemas(dir) {
  const ajv = new Ajv({ allErrors: true, strict: false, validateFormats: false });
  const stripIds = (node) => {
    if (Array.isArray(node)) return node.map(stripIds);
    if (node === null || typeof node !== "object") return node;
    const out = {};
    for (const [k, v] of Object.entries(node)) {
      if (k === "id" && typeof v === "string") continue; // nested ids would move the $ref base
      out[k] = stripIds(v);
    }
    return out;
  };
  const names = readdirSync(dir).filter((f) => f.endsWith(".json"));
  if (names.length === 0) usage(`${dir}: no *.json schemas found`);
  for (const name of names) {
    const schema = stripIds(JSON.parse(readFileSync(join(dir, name), "utf8")));
    delete schema.$schema;
    schema.id = `https://kiln.invalid/schema/${name}`;
    ajv.addSchema(schema);
  }
  const get = (name) => {
    const v = ajv.getSchema(`https://kiln.invalid/schema/${name}`);
    if (!v) usage(`${dir}: schema ${name} missing`);
    return v;
  };
  return {
    layout: get("image-layout-schema.json"),
    index: get("image-index-schema.json"),
    manifest: get("image-manifest-schema.json"),
    config: get("config-schema.json"),
  };
}

const INDEX_TYPES = new Set(["application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json"]);
const MANIFEST_TYPES = new Set(["application/vnd.oci.image.manifest.v1+json", "application/vnd.docker.distribution.manifest.v2+json"]);
const CONFIG_TYPES = new Set(["application/vnd.oci.image.config.v1+json", "application/vnd.docker.container.image.v1+json"]);

let passed = 0;
let failed = 0;
function report(label, validate, doc) {
  if (doc === undefined) {
    failed++;
    console.log(`FAIL ${label}: missing or not valid JSON`);
    return false;
  }
  if (validate(doc)) {
    passed++;
    console.log(`PASS ${label}`);
    return true;
  }
  failed++;
  const errs = (validate.errors ?? []).map((e) => `${e.instancePath || "/"} ${e.message}`).join("; ");
  console.log(`FAIL ${label}: ${errs}`);
  return false;
}

function readJSON(path) {
  try {
    return JSON.parse(readFileSync(path, "utf8"));
  } catch {
    return undefined;
  }
}

function validateLayout(dir, schemas) {
  const blob = (digest) => join(dir, "blobs", ...String(digest).split(":"));
  report(`${dir}/oci-layout`, schemas.layout, readJSON(join(dir, "oci-layout")));
  const index = readJSON(join(dir, "index.json"));
  if (!report(`${dir}/index.json`, schemas.index, index)) return;
  const seen = new Set();
  const walk = (descs) => {
    for (const d of descs ?? []) {
      if (!d || seen.has(d.digest)) continue;
      seen.add(d.digest);
      const doc = readJSON(blob(d.digest));
      if (INDEX_TYPES.has(d.mediaType)) {
        if (report(`${dir} index ${d.digest}`, schemas.index, doc)) walk(doc.manifests);
      } else if (MANIFEST_TYPES.has(d.mediaType)) {
        if (report(`${dir} manifest ${d.digest}`, schemas.manifest, doc) && doc.config && CONFIG_TYPES.has(doc.config.mediaType) && !seen.has(doc.config.digest)) {
          seen.add(doc.config.digest);
          report(`${dir} config ${doc.config.digest}`, schemas.config, readJSON(blob(doc.config.digest)));
        }
      }
    }
  };
  walk(index.manifests);
}

/** Compile kiln's sources into a temp dir (only the modules used here) and import them. */
async function loadKiln(work) {
  const out = join(work, "dist");
  const cfg = join(work, "tsconfig.json");
  writeFileSync(cfg, JSON.stringify({
    extends: join(repo, "tsconfig.json"),
    compilerOptions: { outDir: out, rootDir: join(repo, "src"), declaration: false, sourceMap: false, typeRoots: [join(repo, "node_modules/@types")] },
    files: ["layer/write-layer.ts", "image/materialize.ts", "output/oci-layout.ts", "output/verify.ts"].map((f) => join(repo, "src", f)),
  }));
  const tsc = spawnSync(join(repo, "node_modules/.bin/tsc"), ["-p", cfg], { encoding: "utf8" });
  if (!existsSync(join(out, "output/oci-layout.js"))) {
    console.error(`failed to compile kiln:\n${tsc.stdout}${tsc.stderr}`);
    process.exit(1);
  }
  const imp = (p) => import(pathToFileURL(join(out, p)).href);
  return {
    ...(await imp("layer/write-layer.js")),
    ...(await imp("image/materialize.js")),
    ...(await imp("output/oci-layout.js")),
    ...(await imp("store/blob-store.js")),
    ...(await imp("image/source.js")),
  };
}

async function buildSamples(work) {
  const kiln = await loadKiln(work);
  const store = new kiln.BlobStore(join(work, "store"));
  const text = (path, s, mode = 0o644) => {
    const b = Buffer.from(s);
    return { path, type: "file", mode, uid: 0, gid: 0, mtime: 1_700_000_000, size: b.length, open: () => Readable.from([b]) };
  };
  const l1 = await kiln.writeLayer([
    { path: "app", type: "dir", mode: 0o755, uid: 0, gid: 0, mtime: 1_700_000_000, size: 0 },
    text("app/main.sh", "#!/bin/sh\necho hello\n", 0o755),
  ], store);
  const l2 = await kiln.writeLayer([text("app/.wh.old", ""), text("app/config.txt", "k=v\n")], store);
  const config = {
    created: "2024-01-01T00:00:00Z",
    architecture: "amd64",
    os: "linux",
    config: {
      Env: ["PATH=/usr/local/bin:/usr/bin:/bin"], Entrypoint: ["/app/main.sh"], Cmd: null, WorkingDir: "/app",
      ExposedPorts: { "8080/tcp": {} }, Volumes: { "/data": {} }, Labels: { "org.opencontainers.image.title": "sample" }, User: "1000:1000",
    },
    rootfs: { type: "layers", diff_ids: [l1.diffID, l2.diffID] },
    history: [{ created: "2024-01-01T00:00:00Z", created_by: "COPY main.sh" }, { created_by: "EXPOSE 8080", empty_layer: true }, { created_by: "RUN config" }],
  };
  const image = { config, layers: [l1, l2].map((l) => ({ descriptor: l.descriptor, diffID: l.diffID })) };
  const dirs = [];
  const oci = join(work, "oci");
  const source = async (format, options) => kiln.storeImage(store, (await kiln.materialize(image, store, format, options)).manifest);
  await kiln.writeOciLayout(await source("oci", { annotations: { "org.opencontainers.image.source": "https://example.com/kiln" } }), { dest: oci, tags: ["sample:latest", "sample:v1"] });
  await kiln.writeOciLayout(await source("oci"), { dest: oci });
  dirs.push(oci);
  const docker = join(work, "docker");
  await kiln.writeOciLayout(await source("docker"), { dest: docker, tags: ["sample:docker"] });
  dirs.push(docker);
  return dirs;
}

/** Build each testdata/examples/<name>/Dockerfile with the CLI; a failed build counts as a failure. */
function buildExamples(work) {
  const examples = join(repo, "testdata", "examples");
  if (!existsSync(join(repo, "dist", "cli", "main.js")) || !existsSync(examples)) {
    console.log("note: CLI not compiled (npm run build) or no testdata/examples: example builds skipped");
    return [];
  }
  const dirs = [];
  for (const name of readdirSync(examples).sort()) {
    const dockerfile = join(examples, name, "Dockerfile");
    if (!existsSync(dockerfile)) continue;
    // only examples that build alone: every FROM is scratch or an earlier stage (others, such as
    // examples/ci, take their base as a named context from their own script)
    const stages = new Set(["scratch"]);
    let external = "";
    for (const m of readFileSync(dockerfile, "utf8").matchAll(/^\s*FROM\s+(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?/gim)) {
      if (!stages.has(m[1].toLowerCase())) external ||= m[1];
      if (m[2]) stages.add(m[2].toLowerCase());
    }
    if (external) {
      console.log(`note: testdata/examples/${name} needs the base "${external}" (given by its own script): not built here`);
      continue;
    }
    const dest = join(work, `example-${name}`);
    const r = spawnSync(process.execPath, [join(repo, "bin", "kiln"), "build", "-f", dockerfile, "-t", `${name}:latest`,
      "--output", `type=oci,dest=${dest}`, join(examples, name)], { encoding: "utf8", env: { ...process.env, XDG_CACHE_HOME: join(work, "cache") } });
    if (r.status !== 0) {
      failed++;
      console.log(`FAIL kiln build testdata/examples/${name}: ${(r.stderr || r.stdout).trim().split("\n").pop()}`);
      continue;
    }
    dirs.push(dest);
  }
  return dirs;
}

const [schemaDir, ...layouts] = process.argv.slice(2);
if (!schemaDir) usage();
const schemas = loadSchemas(schemaDir);
let work;
try {
  let dirs = layouts;
  if (dirs.length === 0) {
    work = mkdtempSync(join(tmpdir(), "kiln-validate-"));
    dirs = [...(await buildSamples(work)), ...buildExamples(work)];
  }
  for (const dir of dirs) validateLayout(dir, schemas);
} finally {
  if (work) rmSync(work, { recursive: true, force: true });
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed > 0 ? 1 : 0);
