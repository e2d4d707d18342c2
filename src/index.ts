// kiln's public library API: `import { build, parseDockerfile, ... } from "kiln-build"`.
export { VERSION } from "./version.js";
export { KilnError, DockerfileError, UsageError, RegistryError, AbortError, IsolationError, ERROR_CODES } from "./errors.js";
export type { KilnErrorCode, DockerfileLocation, RegistryErrorDetails } from "./errors.js";

// Dockerfile language
export { parseDockerfile } from "./frontend/parse.js";
export type { DockerfileAST, Instruction, Heredoc, Directive } from "./frontend/ast.js";
export { expandWord, expandWords, expandWordDetailed, ExpansionError } from "./frontend/expand.js";
export type { ExpandEnv, ExpandOptions } from "./frontend/expand.js";
export { typeInstruction } from "./frontend/instructions.js";
export type { TypedInstruction } from "./frontend/instructions.js";
export { lintDockerfile } from "./frontend/lint.js";
export type { Diagnostic } from "./frontend/lint.js";
export { planBuild } from "./frontend/plan.js";
export type { BuildPlan, PlannedStage, PlanOptions } from "./frontend/plan.js";

// Building
export { build } from "./engine/build.js";
export type { BuildResult } from "./engine/build.js";
export type { BuildOptions, OutputSpec } from "./engine/options.js";
export type { BuildEvent, BuildListener } from "./engine/events.js";
export { attestRequest, effectiveAttestations } from "./attest/request.js";
export type { AttestRequest, ProvenanceMode } from "./attest/request.js";
export { readAttestations } from "./attest/read.js";
export type { PlatformAttestations, ReadStatement } from "./attest/read.js";
export type { AttestationRecord } from "./attest/summary.js";
export { readVcsInfo } from "./context/vcs.js";
export type { VcsInfo } from "./context/vcs.js";

// Images, layouts, registries
export type { Image, Layer, MaterializedImage } from "./image/image.js";
export type { Descriptor, Digest, ImageConfig, Manifest, Index, Platform } from "./image/oci.js";
export { OciLayout } from "./image/layout.js";
export { verifyLayout } from "./output/verify.js";
export { parseReference } from "./image/reference.js";
export { parsePlatform } from "./image/platform.js";
export { BlobStore } from "./store/blob-store.js";
export { pullImage, pushLayout, pushImage, login, logout } from "./registry/index.js";
export type { PullOptions, PullPolicy, PullResult, PushOptions, PushResult, RegistryOptions, RetryOptions, TransferProgress } from "./registry/index.js";

// The one image value and the writers that take it
export type { ImageSource, SourceLayer, BlobReader } from "./image/source.js";
export { imageSource, storeImage, layoutImage, storeBlobs, layoutBlobs } from "./image/source.js";
export { writeOciLayout, type LayoutWriteOptions } from "./output/oci-layout.js";
export { writeDockerArchive } from "./output/docker-archive.js";
export { writeOutputs, type OutputRegistryOptions } from "./output/write.js";
