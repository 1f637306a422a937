// The UPN change journal: JSON lines, one `change` line written (to the kernel, so it survives
// a killed process) before its modify is sent, one `done` line after; undo reads it back.
import { closeSync, openSync, readFileSync, writeSync } from 'node:fs';
import { LdapError } from '../shared/ldap/ldap-errors.ts';

export interface JournalRun {
  type: 'run';
  startedAt: string;
  url: string;
  bindDn: string;
  planned: number;
}
export interface JournalChange {
  type: 'change';
  seq: number;
  dn: string;
  /** Exact bytes of the old userPrincipalName as base64, or null when there was none. */
  old: string | null;
  /** The old value as text, for people reading the file. */
  oldText: string | null;
  /** Exact bytes of the new value as base64. */
  new: string;
  newText: string;
}
export interface JournalDone {
  type: 'done';
  seq: number;
  status: 'ok' | 'failed';
  error?: string | undefined;
}
export interface JournalUndo {
  type: 'undo';
  seq: number;
  status: 'restored' | 'not-applied' | 'conflict' | 'failed';
  error?: string | undefined;
  at: string;
}
export type JournalLine = JournalRun | JournalChange | JournalDone | JournalUndo;

/** An append-only journal file. Each line is one write(2), so a kill leaves whole lines. */
export class JournalWriter {
  readonly path: string;
  #fd: number;
  constructor(path: string) {
    this.path = path;
    try {
      this.#fd = openSync(path, 'a', 0o600);
    } catch (err) {
      throw new LdapError('LdapConfig', `Cannot open the journal ${path} for writing: ${(err as Error).message}. Choose a writable path with --journal FILE; nothing was changed.`);
    }
  }
  write(line: JournalLine): void {
    writeSync(this.#fd, `${JSON.stringify(line)}\n`);
  }
  close(): void {
    closeSync(this.#fd);
  }
}

export interface JournalEntry {
  change: JournalChange;
  done?: JournalDone | undefined;
  undo?: JournalUndo | undefined;
}

/**
 * Reads a journal; a torn last line (killed mid-write) is ignored, any other bad line is an
 * error. seq is unique within a file (a run appended to an existing journal continues it).
 */
export function readJournal(path: string): { runs: JournalRun[]; entries: JournalEntry[]; maxSeq: number } {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new LdapError('LdapConfig', `Cannot read the journal ${path}: ${(err as Error).message}. Pass the file written by nimbus ad set-upn --journal.`);
  }
  const lines = text.split('\n');
  const runs: JournalRun[] = [];
  const bySeq = new Map<number, JournalEntry>();
  let maxSeq = 0;
  lines.forEach((raw, i) => {
    if (!raw.trim()) return;
    let l: JournalLine;
    try {
      l = JSON.parse(raw) as JournalLine;
    } catch {
      if (i === lines.length - 1) return;
      throw new LdapError('LdapConfig', `${path}:${i + 1} is not a journal line (not JSON). Was the file edited by hand?`);
    }
    if (l.type === 'run') runs.push(l);
    else if (l.type === 'change') {
      bySeq.set(l.seq, { change: l });
      maxSeq = Math.max(maxSeq, l.seq);
    } else {
      const e = bySeq.get(l.seq);
      if (!e) return;
      if (l.type === 'done') e.done = l;
      else e.undo = l;
    }
  });
  return { runs, entries: [...bySeq.values()], maxSeq };
}
