// A problem found in a Dockerfile, as lint and the planner report it (file, line, severity, rule).

export interface Diagnostic {
  file: string;
  /** 1-based line; 0 when the problem is not tied to a line (e.g. an unused --build-arg). */
  line: number;
  severity: "error" | "warning";
  rule: string;
  message: string;
}
