import { AppError } from '../domain/errors.js';

/**
 * A password for `users create`: all of stdin with `--password-stdin` (one trailing newline
 * dropped), or typed twice at a prompt on a terminal with nothing echoed. Never an argument: those
 * land in shell history and `ps`.
 */
export async function readPassword(fromStdin: boolean): Promise<string> {
  if (fromStdin) {
    const chunks: Buffer[] = [];
    for await (const c of process.stdin) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
    if (!text) throw new AppError('VALIDATION_FAILED', 'no password on stdin', { fields: { password: 'required' } });
    return text;
  }
  if (!process.stdin.isTTY) throw new AppError('VALIDATION_FAILED', 'no terminal to prompt on: pass --password-stdin and pipe the password in', { fields: { password: 'required' } });
  const first = await prompt('Password: ');
  const second = await prompt('Repeat it: ');
  if (first !== second) throw new AppError('VALIDATION_FAILED', 'the two passwords differ', { fields: { password: 'mismatch' } });
  return first;
}

/** One line from the terminal in raw mode, echoing nothing. */
function prompt(label: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const stdin = process.stdin;
    process.stderr.write(label);
    stdin.setRawMode(true);
    stdin.resume();
    let value = '';
    const done = (err?: Error) => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.off('data', onData);
      process.stderr.write('\n');
      if (err) reject(err);
      else resolve(value);
    };
    const onData = (buf: Buffer) => {
      for (const ch of buf.toString('utf8')) {
        if (ch === '\r' || ch === '\n') return done();
        if (ch === '\u0003') return done(new AppError('VALIDATION_FAILED', 'cancelled'));
        if (ch === '\u007f' || ch === '\b') value = value.slice(0, -1);
        else value += ch;
      }
    };
    stdin.on('data', onData);
  });
}
