// Build events: what the build engine reports while it works. The CLI renders them
// (src/cli/progress.ts); library users may pass their own listener. Blob transfers report
// TransferProgress events ("pull-progress" / "push-progress", bytes done/total per blob).
import type { TransferProgress } from "../registry/options.js";

export type BuildEvent =
  /**
   * `platform`: the target platform, in a build for several (as buildx prints "[linux/arm64 stage 1/3]");
   * `emulated`: a RUN whose commands run under emulation, for this platform.
   */
  | { type: "step-start"; id: number; stage: string; step: number; steps: number; text: string; platform?: string; emulated?: string }
  | {
      type: "step-done";
      id: number;
      seconds: number;
      layer?: { digest: string; size: number };
      cached?: boolean;
      /** COPY/ADD: the layer came from another platform's identical step of this build (written once). */
      shared?: boolean;
      /** RUN: seconds spent finding what the step changed (the snapshot diff). */
      snapshotSeconds?: number;
    }
  | { type: "step-log"; id: number; stream: "stdout" | "stderr"; data: Buffer }
  | { type: "warning"; message: string }
  | { type: "info"; message: string }
  | TransferProgress;

export type BuildListener = (event: BuildEvent) => void;
