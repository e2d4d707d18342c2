// The examples users copy (examples/): each YAML file parses, every kiln command line in it
// (Kubernetes container args, Tekton step args, GitLab script lines, with their variables filled
// in) is accepted by kiln's own argument parser (checkCommandLine: the options exist and every
// value the command line decides is valid), the pods ask for no privileges, and the non-root one
// is a "restricted" pod. The kaniko → kiln table names only kiln build options that exist.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { checkCommandLine } from "../../src/cli/check.js";
import { REPO_ROOT } from "../helpers/kiln.js";
import { shellWords } from "../helpers/shell-words.js";
import { GITLAB_CI_ENV } from "../helpers/ci-env.js";

const EX = join(REPO_ROOT, "examples");

async function docs(file: string): Promise<any[]> {
  const parsed = parseAllDocuments(await readFile(join(EX, file), "utf8"));
  for (const d of parsed) expect(d.errors, file).toEqual([]);
  return parsed.map((d) => d.toJS());
}

/** Every kiln command line in a GitLab script (each `|`-separated command whose first word is kiln), minus the "kiln". */
function scriptCommands(lines: string[], env: Record<string, string>): string[][] {
  const out: string[][] = [];
  for (const line of lines) {
    for (const part of line.split("|")) {
      const w = shellWords(part.trim(), env);
      if (w[0] === "kiln") out.push(w.slice(1));
    }
  }
  return out;
}

function accepted(argv: string[]): string {
  try {
    checkCommandLine(argv);
    return "ok";
  } catch (e) {
    return `${(e as Error).message} (in: kiln ${argv.join(" ")})`;
  }
}

const KILN_IMAGE = /\/kiln:|^\$\(params\.BUILDER_IMAGE\)$/;

describe("examples/", () => {
  it("checkCommandLine refuses what kiln would refuse (the check is not vacuous)", () => {
    expect(accepted(["build", "--tar-path", "x.tar", "."])).toMatch(/^kaniko flag --tar-path: use --output type=docker/);
    expect(accepted(["build", "--destnation", "r/x:1", "."])).toMatch(/^kiln build: unknown option --destnation/);
    expect(accepted(["build", "--cache-to", "type=registry,ref=r/x,mode=all", "."])).toMatch(/mode must be min or max/);
    expect(accepted(["build", "--isolation", "none", "."])).toMatch(/--isolation must be one of/);
    expect(accepted(["build", "-o", "type=tarball,dest=x", "."])).toMatch(/unsupported type "tarball"/);
    expect(accepted(["build"])).toMatch(/expected exactly one CONTEXT/);
    expect(accepted(["login", "r.example.com", "--pasword-stdin"])).toMatch(/unknown option --pasword-stdin/);
    expect(accepted(["build", "-t", "r/x:1", "--push", "."])).toBe("ok");
  });

  it("kubernetes/job.yaml: a root pod with no securityContext; kiln's args are accepted", async () => {
    const [job] = await docs("kubernetes/job.yaml");
    expect(job.kind).toBe("Job");
    const pod = job.spec.template.spec;
    expect(pod.securityContext).toBeUndefined();
    const kilnC = pod.containers.filter((c: any) => KILN_IMAGE.test(c.image));
    expect(kilnC).toHaveLength(1);
    expect(kilnC[0].securityContext).toBeUndefined();
    expect(kilnC[0].command).toBeUndefined(); // the image's entrypoint is kiln
    expect(accepted(kilnC[0].args)).toBe("ok");
    expect(JSON.stringify(job)).not.toMatch(/privileged|hostPID|hostNetwork|SYS_ADMIN|procMount/);
  });

  it("kubernetes/job-nonroot.yaml: uid 1000 under the restricted standard; kiln's args are accepted", async () => {
    const [job] = await docs("kubernetes/job-nonroot.yaml");
    const pod = job.spec.template.spec;
    expect(pod.securityContext).toMatchObject({ runAsUser: 1000, runAsNonRoot: true, seccompProfile: { type: "RuntimeDefault" } });
    const kilnC = pod.containers.filter((c: any) => KILN_IMAGE.test(c.image));
    expect(kilnC).toHaveLength(1);
    expect(kilnC[0].securityContext).toEqual({ allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"] } });
    expect(accepted(kilnC[0].args)).toBe("ok");
    expect(JSON.stringify(job)).not.toMatch(/privileged|hostPID|"add"|procMount/);
  });

  it("gitlab-ci/.gitlab-ci.yml: the login and build lines are accepted", async () => {
    const [ci] = await docs("gitlab-ci/.gitlab-ci.yml");
    expect(ci.build.image.name).toMatch(KILN_IMAGE);
    const env = { ...GITLAB_CI_ENV };
    const cmds = scriptCommands(ci.build.script, env);
    expect(cmds.map((c) => c[0])).toEqual(["login", "build"]);
    for (const c of cmds) expect(accepted(c)).toBe("ok");
    expect(cmds[1]).toContain("--push");
    expect(cmds[1]!.at(-1)).toBe("/builds/group/project");
  });

  it("tekton/kiln-task.yaml: the build step's args, with params filled in, are accepted", async () => {
    const [task] = await docs("tekton/kiln-task.yaml");
    expect(task.kind).toBe("Task");
    const defaults = Object.fromEntries(task.spec.params.filter((p: any) => "default" in p).map((p: any) => [p.name, p.default]));
    const values: Record<string, unknown> = { ...defaults, IMAGE: "registry.example.com/team/app:1.0" };
    const fill = (arg: string): string[] => {
      const arr = /^\$\(params\.(\w+)\[\*\]\)$/.exec(arg);
      if (arr) return values[arr[1]!] as string[];
      return [arg
        .replace(/\$\(params\.(\w+)\)/g, (_m, n: string) => String(values[n] ?? `<missing ${n}>`))
        .replace(/\$\(results\.(\w+)\.path\)/g, "/tekton/results/$1")
        .replace(/\$\(workspaces\.(\w+)\.path\)/g, "/workspace/$1")];
    };
    const steps = task.spec.steps.filter((s: any) => KILN_IMAGE.test(s.image) && s.args);
    expect(steps).toHaveLength(1);
    const argv = steps[0].args.flatMap(fill);
    expect(argv.join(" ")).not.toContain("<missing");
    expect(accepted(argv)).toBe("ok");
    expect(argv).toContain("--iidfile=/tekton/results/IMAGE_DIGEST");
    expect(values.EXTRA_ARGS).toEqual([]);
    expect(accepted([...steps[0].args.slice(0, -2).flatMap(fill), "--build-arg=K=V", "./"])).toBe("ok");
    expect(JSON.stringify(task)).not.toMatch(/privileged|securityContext/);
  });

  it("README's kaniko table names only kiln build options that exist", async () => {
    const text = await readFile(join(EX, "README.md"), "utf8");
    const rows = text.split("\n").filter((l) => l.startsWith("| `--") || l.startsWith("| `/kaniko"));
    expect(rows.length).toBeGreaterThan(20);
    const kilnFlags = new Set<string>();
    for (const r of rows) for (const m of r.split("|")[2]!.matchAll(/`[^`]*`/g)) for (const f of m[0].matchAll(/(?:^|[\s`])(--[a-z-]+)/g)) kilnFlags.add(f[1]!);
    expect(kilnFlags.size).toBeGreaterThan(15);
    for (const f of kilnFlags) {
      const problems = ["build", "login"].map((cmd) => accepted([cmd, f, "x", "."]));
      expect(problems.some((p) => !/unknown option/.test(p)), `${f}: ${problems.join("; ")}`).toBe(true);
    }
  });
});
