// Process and port helpers shared by the test-server scripts: run a command, find a free
// loopback port, wait for a port to open or close, find who holds a port, stop by pid.
import { spawn, type SpawnOptions } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { readFile, readdir, readlink } from 'node:fs/promises';
import net from 'node:net';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs a command to completion, capturing output. Never goes through a shell, so
 * arguments need no quoting. Does not throw on a non-zero exit: callers decide.
 */
export function run(cmd: string, args: string[], opts: SpawnOptions & { input?: string } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { ...opts, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', (err: NodeJS.ErrnoException) => {
      reject(
        err.code === 'ENOENT'
          ? new Error(`command not found: ${cmd}. Install the test packages first: npm run test-servers:install`)
          : err,
      );
    });
    child.on('close', (code, signal) => resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr }));
    if (opts.input !== undefined) child.stdin?.end(opts.input);
    else child.stdin?.end();
  });
}

/** Like run(), but throws an error naming the command and its stderr on failure. */
export async function runOk(cmd: string, args: string[], opts: SpawnOptions & { input?: string } = {}): Promise<RunResult> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) {
    const tail = (r.stderr || r.stdout).trim().split('\n').slice(-15).join('\n');
    throw new Error(`${cmd} ${args.slice(0, 3).join(' ')} ... exited with ${r.code}:\n${tail}`);
  }
  return r;
}

/** A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** True when something accepts TCP connections on 127.0.0.1:port. */
export function portOpen(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ port, host });
    const done = (open: boolean) => {
      sock.destroy();
      resolve(open);
    };
    sock.setTimeout(1000, () => done(false));
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
  });
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls until `check` returns true or the timeout passes; returns the last result. */
export async function waitFor(check: () => Promise<boolean>, timeoutMs: number, intervalMs = 100): Promise<boolean> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > until) return false;
    await sleep(intervalMs);
  }
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM means it exists but belongs to someone else: still alive.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Finds the pid listening on a TCP port by reading /proc (no lsof/ss dependency),
 * so "port in use" errors can name the culprit. Returns undefined when unknown.
 */
export async function pidListeningOn(port: number): Promise<{ pid: number; command: string } | undefined> {
  const inodes = new Set<string>();
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      // local_address is "ADDR:PORT", st 0A is LISTEN, inode is column 9.
      if (cols[1]?.endsWith(`:${hex}`) && cols[3] === '0A' && cols[9]) inodes.add(cols[9]);
    }
  }
  if (inodes.size === 0) return undefined;
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let fds: string[];
    try {
      fds = await readdir(`/proc/${entry}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      const target = await readlink(`/proc/${entry}/fd/${fd}`).catch(() => '');
      const m = /^socket:\[(\d+)\]$/.exec(target);
      if (m?.[1] && inodes.has(m[1])) {
        const command = (await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '')).replace(/\0/g, ' ').trim();
        return { pid: Number(entry), command };
      }
    }
  }
  return undefined;
}

/** Throws a helpful error if a port on loopback is already taken. */
export async function assertPortFree(port: number, what: string): Promise<void> {
  if (!(await portOpen(port))) return;
  const holder = await pidListeningOn(port);
  const who = holder ? `pid ${holder.pid} (${holder.command.slice(0, 120)})` : 'an unknown process';
  throw new Error(
    `port ${port} is in use by ${who}: ${what} needs it. Stop that process ` +
      `(e.g. \`npm run test-servers -- stop\` if it is a leftover test server, or \`kill ${holder?.pid ?? '<pid>'}\`) and retry.`,
  );
}

/**
 * Stops a process we started: SIGTERM, wait, then SIGKILL. Only ever by pid, never
 * by name, so nothing else on the machine is touched.
 */
export async function stopPid(pid: number, graceMs = 5000): Promise<void> {
  if (!pidAlive(pid)) return;
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  if (await waitFor(async () => !pidAlive(pid), graceMs, 50)) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    return;
  }
  await waitFor(async () => !pidAlive(pid), 5000, 50);
}

/** Stops a pid and waits until the given ports no longer accept connections. */
export async function stopPidAndWaitPorts(pid: number, ports: number[], graceMs = 5000): Promise<void> {
  await stopPid(pid, graceMs);
  const ok = await waitFor(async () => {
    for (const p of ports) if (await portOpen(p)) return false;
    return true;
  }, 10_000);
  if (!ok) throw new Error(`ports ${ports.join(', ')} are still open after stopping pid ${pid}; something else holds them`);
}


/** A server started in the foreground with its output in a log file, stopped by its own pid. */
export interface Daemon {
  pid: number;
  /** How it ended (`exit code N`), or undefined while it runs. */
  exited(): string | undefined;
  /** Stop killing it when this process exits (call before stopping it on purpose). */
  release(): void;
}

/**
 * Starts `cmd` with stdout/stderr appended to `logFile`. If this process exits first, the
 * daemon is killed with it, so a crashed test run leaves no server holding a port.
 */
export function spawnDaemon(cmd: string, args: string[], opts: { cwd: string; logFile: string }): Daemon {
  const fd = openSync(opts.logFile, 'a');
  const child = spawn(cmd, args, { cwd: opts.cwd, stdio: ['ignore', fd, fd] });
  closeSync(fd);
  const pid = child.pid;
  if (pid === undefined) throw new Error(`${cmd} did not start (no pid): is it installed? Run: npm run test-servers:install`);
  let exited: string | undefined;
  child.on('exit', (code, signal) => (exited = `exit code ${code ?? signal}`));
  const killOnExit = () => {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  };
  process.once('exit', killOnExit);
  return { pid, exited: () => exited, release: () => void process.removeListener('exit', killOnExit) };
}

/** The last `lines` lines of a log file ('' when it cannot be read), for error messages. */
export async function logTail(file: string, lines: number): Promise<string> {
  return (await readFile(file, 'utf8').catch(() => '')).trim().split('\n').slice(-lines).join('\n');
}
