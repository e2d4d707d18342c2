// The registry package's public surface: pull, push, login/logout, the client and credentials.
export { RegistryClient, allowsPlainHttp, type RegistryRequest, type RegistryResponse } from "./client.js";
export { resolveCredentials, type Credentials } from "./credentials.js";
export { login, logout } from "./login.js";
export type { RegistryOptions, RetryOptions, TransferProgress } from "./options.js";
export { pullImage, type PullOptions, type PullPolicy, type PullResult } from "./pull.js";
export { layoutSource, pushImage, pushLayout, storeSource, type BlobSource, type PushOptions, type PushResult } from "./push.js";
