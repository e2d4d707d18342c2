// The version kiln reports (`kiln --version`, the library's VERSION); keep in step with package.json.
export const VERSION = "0.1.0";
