// Retry delays after failed cycles: exponential from `baseMs`, capped at `maxMs`, with up to
// 20% jitter so agents that failed together (the cloud went down) do not retry in step.

export interface BackoffOptions {
  /** Delay after the first failure. Default 5 s. */
  baseMs?: number;
  /** Longest delay. Default 5 min (a failing source is retried at least that often). */
  maxMs?: number;
  /** Source of randomness in [0, 1); tests pass a constant. Default Math.random. */
  random?: () => number;
}

/** Delay before retry number `failures` (1 after the first failure). */
export function backoffDelay(failures: number, o: BackoffOptions = {}): number {
  const base = o.baseMs ?? 5_000;
  const max = o.maxMs ?? 300_000;
  const raw = Math.min(max, base * 2 ** Math.max(0, Math.min(30, failures - 1)));
  const jitter = 1 - 0.2 * (o.random ?? Math.random)();
  return Math.round(raw * jitter);
}
