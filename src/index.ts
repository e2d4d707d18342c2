// kiln's public library API: `import { build, parseDockerfile, ... } from "kiln-build"`.
export { VERSION } from "./version.js";
export { KilnError, DockerfileError, UsageError, RegistryError, AbortError, IsolationError, ERROR_CODES } from "./errors.js";
export type { KilnErrorCode, DockerfileLocation, RegistryErrorDetails } from "./errors.js";

// Dockerfile language
export { parseDockerfile } from "./dockerfile/parse.js";
export type { DockerfileAST, Instruction, Heredoc, Directive } from "./dockerfile/ast.js";
export { expandWord, expandWords, expandWordDetailed, ExpansionError } from "./dockerfile/expand.js";
export type { ExpandEnv, ExpandOptions } from "./dockerfile/expand.js";
export { typeInstruction } from "./dockerfile/instructions.js";
export type { TypedInstruction } from "./dockerfile/instructions.js";
export { lintDockerfile } from "./dockerfile/lint.js";
export type { Diagnostic } from "./dockerfile/lint.js";
export { planBuild } from "./dockerfile/plan.js";
export type { BuildPlan, PlannedStage, PlanOptions } from "./dockerfile/plan.js";

// Building
export { build } from "./build/build.js";
export type { BuildResult } from "./build/build.js";
export type { BuildOptions, OutputSpec } from "./build/options.js";
export type { BuildEvent, BuildListener } from "./build/events.js";
export { attestRequest } from "./attest/request.js";
export type { AttestRequest, ProvenanceMode } from "./attest/request.js";

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
