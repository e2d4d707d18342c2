// Git source references as buildx writes them: which sources are git URLs, the #ref:subdir and
// ?ref=&subdir= forms, scp-like SSH remotes, and userinfo redacted wherever a URL is printed.
import { describe, expect, it } from "vitest";
import { isGitUrl, parseGitUrl, redactUrl } from "../../src/context/git-url.js";
import { remoteWithoutCredentials } from "../../src/context/git.js";
import { KilnError } from "../../src/errors.js";

describe("git URLs", () => {
  it("recognises the forms BuildKit takes as git, and nothing else", () => {
    for (const s of ["https://host/org/repo.git", "https://host/org/repo.git#main:dir", "git@host:org/repo.git", "ssh://git@host/repo", "git://host/repo", "https://host/repo?ref=main"]) {
      expect(isGitUrl(s), s).toBe(true);
    }
    for (const s of ["https://host/file.tar.gz", "https://host/repo", "./dir", "/abs/path", "docker-image://alpine", "oci-layout:///x", "github.com/org/repo"]) {
      expect(isGitUrl(s), s).toBe(false);
    }
  });

  it("#ref:subdir and ?ref=&subdir= give the same parts", () => {
    const a = parseGitUrl("https://host/org/repo.git#v1.2:sub/dir/");
    const b = parseGitUrl("https://host/org/repo.git?ref=v1.2&subdir=sub/dir");
    for (const r of [a, b]) {
      expect(r).toMatchObject({ remote: "https://host/org/repo.git", ref: "v1.2", subdir: "sub/dir", transport: "https", host: "host", submodules: true });
    }
    expect(parseGitUrl("https://host/r.git?tag=v1").ref).toBe("refs/tags/v1");
    expect(parseGitUrl("https://host/r.git?branch=dev&keep-git-dir=true&submodules=false")).toMatchObject({ ref: "refs/heads/dev", keepGitDir: true, submodules: false });
    expect(parseGitUrl("https://host/r.git?ref=main&checksum=abcdef1").checksum).toBe("abcdef1");
  });

  it("scp-like and ssh:// remotes are SSH; the host is what auth is keyed to", () => {
    expect(parseGitUrl("git@example.com:org/repo.git#main")).toMatchObject({ remote: "git@example.com:org/repo.git", ref: "main", transport: "ssh", host: "example.com" });
    expect(parseGitUrl("ssh://git@example.com:2222/repo.git")).toMatchObject({ transport: "ssh", host: "example.com:2222" });
  });

  it("refuses what git would misread: option-like refs, .. in subdir, unknown query keys", () => {
    for (const s of ["https://h/r.git#--upload-pack=x", "https://h/r.git#main:../up", "https://h/r.git?foo=1", "https://h/r.git?ref=a&tag=b", "ftp://h/r.git"]) {
      expect(() => parseGitUrl(s), s).toThrow(KilnError);
    }
  });

  it("never prints userinfo whole", () => {
    expect(redactUrl("https://user:s3cret@host/repo.git")).toBe("https://***@host/repo.git");
    expect(redactUrl("https://tok3n@host/repo.git")).toBe("https://***@host/repo.git");
    expect(redactUrl("ssh://git@host/repo.git")).toBe("ssh://git@host/repo.git");
    expect(redactUrl("ssh://git:pw@host/repo.git")).toBe("ssh://***@host/repo.git");
    // what a kept .git/config and provenance record
    expect(remoteWithoutCredentials("https://user:s3cret@host/repo.git")).toBe("https://host/repo.git");
    expect(remoteWithoutCredentials("ssh://git:pw@host/repo.git")).toBe("ssh://git@host/repo.git");
    expect(remoteWithoutCredentials("git@host:org/repo.git")).toBe("git@host:org/repo.git");
    try {
      parseGitUrl("https://user:s3cret@host/repo.git?bad=1");
    } catch (err) {
      expect((err as Error).message).not.toContain("s3cret");
    }
  });
});
