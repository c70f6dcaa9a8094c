// Where a user's password comes from: one line on stdin (so it never shows in `ps` or the shell
// history, unlike an argument), or generated and shown once.

import { randomInt } from 'node:crypto';
import type { Readable } from 'node:stream';
import { CliError } from './cli-error.js';

/** The first line of `input`, trailing CR/LF stripped; the rest is not read. */
export async function readPasswordLine(input: Readable): Promise<string> {
  input.setEncoding('utf8');
  let text = '';
  for await (const chunk of input as AsyncIterable<string>) {
    text += chunk;
    if (text.includes('\n')) break;
  }
  const line = (text.split('\n')[0] ?? '').replace(/\r$/, '');
  if (line === '') {
    throw new CliError('the password read from stdin is empty: pipe one line containing the password');
  }
  return line;
}

// No 0/O, 1/l/I: the password is read off a screen and typed into a mail client.
const ALPHABET = 'ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789';

/** 20 characters from 57: about 116 bits, beyond any online or offline guessing. */
export function generatePassword(length = 20): string {
  let out = '';
  for (let i = 0; i < length; i++) out += ALPHABET[randomInt(ALPHABET.length)];
  return out;
}
