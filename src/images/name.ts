// Local image names as `kiln images`, `tag`, `rmi`, `run` and `build -t` spell them: a reference
// in Docker's familiar form with the tag defaulted ("app" → "app:latest", "docker.io/library/x:1"
// → "x:1"). A name never holds a digest: images are found by digest with NAME@sha256:... instead.
import { KilnError } from "../errors.js";
import { familiarName, parseReference, type Reference } from "../image/reference.js";

/** The stored form of a name given on the command line; a one-line KilnError when it is no reference. */
export function normalizeName(input: string, what = "image name"): string {
  let ref: Reference;
  try {
    ref = parseReference(input);
  } catch (err) {
    throw new KilnError("TAG_INVALID", `${what} ${JSON.stringify(input)}: ${(err as Error).message.replace(/^invalid reference "[^"]*": /, "")}`);
  }
  if (ref.digest !== undefined) throw new KilnError("TAG_INVALID", `${what} ${JSON.stringify(input)}: a name cannot hold a digest (tag it as NAME:TAG)`);
  return familiarName(ref);
}
