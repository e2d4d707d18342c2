#!/usr/bin/env node
// Benchmark for the Dockerfile front end: generates a 10,000-instruction Dockerfile (several
// stages, every common instruction kind, heredocs, ARG/ENV expansion, COPY --from), then times
// parse + plan (which types every instruction) + expansion of every instruction the way the
// build engine walks a stage. Prints per-run and median times, peak RSS, and PASS/FAIL against
// the target (< 1000 ms median). Needs the compiled library: `npm run build` first.
// Usage: node scripts/bench-parse.mjs [--instructions N] [--runs N]
// (KILN_DIST=/path/to/dist overrides where the compiled modules are loaded from.)
import { pathToFileURL, fileURLToPath } from "node:url";
import path from "node:path";

const here = path.dirname(fileURLToPath(import.meta.url));
const dist = process.env.KILN_DIST ? path.resolve(process.env.KILN_DIST) : path.join(here, "..", "dist");
const load = (rel) => import(pathToFileURL(path.join(dist, rel)).href);

const { parseDockerfile } = await load("frontend/parse.js");
const { planBuild, ArgScope } = await load("frontend/plan.js");
const { expandInstruction } = await load("frontend/expand-instruction.js");

const argv = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = argv.indexOf(name);
  return i >= 0 && argv[i + 1] !== undefined ? Number(argv[i + 1]) : dflt;
};
const TOTAL = opt("--instructions", 10_000);
const RUNS = opt("--runs", 5);
const TARGET_MS = 1000;
const STAGES = 10;

/** A Dockerfile with exactly `total` instructions spread over STAGES stages. */
function generate(total) {
  const lines = ["# syntax=docker/dockerfile:1", "ARG BASE=busybox", "ARG VERSION=1.36", "ARG PREFIX=/opt"];
  let count = 3;
  const perStage = Math.floor((total - 3) / STAGES);
  for (let s = 0; s < STAGES && count < total; s++) {
    lines.push(`FROM \${BASE}:\${VERSION} AS stage${s}`);
    count++;
    lines.push("ARG PREFIX", `ARG STAGE_ID=${s}`);
    count += 2;
    let k = 0;
    while (count < total && (k < perStage - 3 || s === STAGES - 1)) {
      switch (k % 12) {
        case 0:
          lines.push(`ENV APP_${k}=\${PREFIX}/app${k} PATH_${k}="\${PREFIX}/bin:$PATH"`);
          break;
        case 1:
          lines.push(`RUN --mount=type=cache,target=/root/.cache,id=c${k} echo "step ${k}" && \\`, "    ls -la /tmp");
          break;
        case 2:
          lines.push(s > 0 ? `COPY --from=stage${s - 1} --chown=1000:1000 /opt/app${k} \${PREFIX}/from${k}/` : `COPY src${k}/ \${PREFIX}/src${k}/`);
          break;
        case 3:
          lines.push(`LABEL org.example.k${k}="value ${k}" stage="\${STAGE_ID}"`);
          break;
        case 4:
          lines.push(`WORKDIR \${PREFIX}/w${k}`);
          break;
        case 5:
          lines.push("RUN <<EOF", `echo heredoc ${k}`, "touch /tmp/f" + k, "EOF");
          break;
        case 6:
          lines.push(`COPY <<EOF \${PREFIX}/conf${k}.txt`, `key=\${APP_${k - 6}}`, "EOF");
          break;
        case 7:
          lines.push(`EXPOSE ${8000 + (k % 1000)}/tcp`);
          break;
        case 8:
          lines.push(`ARG OPT_${k}=\${STAGE_ID}-${k}`);
          break;
        case 9:
          lines.push(`USER \${STAGE_ID}:${k}`);
          break;
        case 10:
          lines.push(`RUN ["sh", "-c", "echo exec ${k}"]`);
          break;
        case 11:
          lines.push(`ADD --chmod=644 file${k}.txt \${PREFIX}/add${k}.txt`);
          break;
      }
      k++;
      count++;
    }
  }
  lines.push('CMD ["sh"]');
  return lines.join("\n") + "\n";
}

/** Parse, plan, then expand every instruction of every needed stage as the engine would. */
function runOnce(text) {
  const ast = parseDockerfile(text);
  const plan = planBuild(ast, { buildArgs: { VERSION: "1.37" } });
  let expanded = 0;
  for (const index of plan.order) {
    const stage = plan.stages[index];
    const scope = new ArgScope(plan, plan.buildArgs);
    // The stage environment kept incrementally: ARG values overlaid by ENV values (ENV wins).
    const envNames = new Set();
    const vars = new Map();
    for (const t of stage.instructions) {
      const out = expandInstruction(t, vars, { escapeToken: plan.escapeToken });
      if (out.kind === "arg") {
        for (const a of out.args) {
          const v = scope.declare(a, vars, out.line);
          if (v !== undefined && !envNames.has(a.name)) vars.set(a.name, v);
        }
      } else if (out.kind === "env") {
        for (const p of out.pairs) {
          envNames.add(p.key);
          vars.set(p.key, p.value);
        }
      }
      expanded++;
    }
  }
  return { instructions: ast.instructions.length, stages: plan.stages.length, expanded };
}

const text = generate(TOTAL);
console.log(`Dockerfile: ${text.split("\n").length} lines, ${(text.length / 1024).toFixed(0)} KiB`);
const first = runOnce(text); // warm-up (JIT) run, not counted
console.log(`instructions: ${first.instructions}, stages: ${first.stages}, expanded: ${first.expanded}`);

const times = [];
for (let i = 0; i < RUNS; i++) {
  const t0 = process.hrtime.bigint();
  runOnce(text);
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  times.push(ms);
  console.log(`run ${i + 1}: ${ms.toFixed(1)} ms`);
}
times.sort((a, b) => a - b);
const median = times[Math.floor(times.length / 2)];
const peakRssMiB = process.resourceUsage().maxRSS / 1024;
console.log(`median: ${median.toFixed(1)} ms, best: ${times[0].toFixed(1)} ms, peak RSS: ${peakRssMiB.toFixed(1)} MiB`);
const pass = median < TARGET_MS && first.instructions >= TOTAL;
console.log(`${pass ? "PASS" : "FAIL"}: parse + plan + expand of ${first.instructions} instructions, median ${median.toFixed(1)} ms (target < ${TARGET_MS} ms)`);
process.exitCode = pass ? 0 : 1;
