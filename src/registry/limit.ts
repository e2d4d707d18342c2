// A tiny concurrency limiter: run async jobs at most N at a time. After the first error no new
// job starts; the call rejects with that error once the jobs already running have settled (so a
// cancelled transfer has cleaned up its temp files when the caller sees the rejection).

export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array<R>(items.length);
  let next = 0;
  let failed = false;
  const worker = async (): Promise<void> => {
    while (!failed && next < items.length) {
      const i = next++;
      try {
        results[i] = await fn(items[i], i);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  };
  const n = Math.max(1, Math.min(limit, items.length));
  const settled = await Promise.allSettled(Array.from({ length: n }, () => worker()));
  const failure = settled.find((s): s is PromiseRejectedResult => s.status === "rejected");
  if (failure) throw failure.reason;
  return results;
}
