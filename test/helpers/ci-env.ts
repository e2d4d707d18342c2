// The GitLab CI variables the docs' and examples' job lines use, with stand-in values, for
// expanding those lines before the real argument parser checks them.
export const GITLAB_CI_ENV: Readonly<Record<string, string>> = {
  CI_REGISTRY: "registry.gitlab.example.com",
  CI_REGISTRY_USER: "gitlab-ci-token",
  CI_REGISTRY_PASSWORD: "secret",
  CI_REGISTRY_IMAGE: "registry.gitlab.example.com/group/project",
  CI_COMMIT_TAG: "v1.2.3",
  CI_PROJECT_DIR: "/builds/group/project",
};
