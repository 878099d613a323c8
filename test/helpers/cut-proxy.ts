/**
 * A TCP proxy in front of the service that reads the HTTP/1.1 requests going through it, so a test
 * can count the body bytes of each PATCH and cut a connection after a given number of them: a phone
 * losing its network in the middle of an upload. The cut forwards exactly `cutAfter` body bytes, then
 * half-closes the server side (so the server reads all of them, then sees the request end early) and
 * destroys the client side (the client sees its connection reset).
 */
import net from 'node:net';

export interface PatchSeen {
  /** The request's Upload-Offset header. */
  offset: number;
  /** Body bytes forwarded to the server. */
  bodyBytes: number;
  cut: boolean;
}

export interface CutProxy {
  url: string;
  /** Every PATCH seen, in order. */
  patches: PatchSeen[];
  /** Cut the next PATCH once this many of its body bytes went through (null: never). */
  cutNextPatchAfter(bytes: number | null): void;
  close(): Promise<void>;
}

export async function startCutProxy(target: string): Promise<CutProxy> {
  const t = new URL(target);
  let cutAfter: number | null = null;
  const patches: PatchSeen[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(t.port), t.hostname);
    sockets.add(client).add(upstream);
    client.once('close', () => sockets.delete(client));
    upstream.once('close', () => sockets.delete(upstream));
    upstream.pipe(client);
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
    upstream.on('end', () => client.end());
    upstream.on('drain', () => client.resume());

    let head = Buffer.alloc(0);
    let bodyLeft = 0;
    let patch: PatchSeen | null = null;
    let limit: number | null = null;
    let dead = false;
    client.on('data', (chunk: Buffer) => {
      if (dead) return;
      let data = chunk;
      while (data.length > 0 && !dead) {
        if (bodyLeft === 0) {
          head = Buffer.concat([head, data]);
          const end = head.indexOf('\r\n\r\n');
          if (end < 0) return;
          const text = head.subarray(0, end).toString('latin1');
          const rest = head.subarray(end + 4);
          upstream.write(head.subarray(0, end + 4));
          head = Buffer.alloc(0);
          const method = text.split(' ', 1)[0];
          const header = (name: string): string | undefined => new RegExp(`^${name}:\\s*(.*)$`, 'im').exec(text)?.[1]?.trim();
          bodyLeft = Number(header('content-length') ?? 0);
          patch = null;
          limit = null;
          if (method === 'PATCH' || (method === 'POST' && bodyLeft > 0)) {
            patch = { offset: Number(header('upload-offset') ?? 0), bodyBytes: 0, cut: false };
            patches.push(patch);
            limit = cutAfter;
            cutAfter = null;
          }
          data = rest;
          continue;
        }
        const take = Math.min(bodyLeft, data.length);
        let piece = data.subarray(0, take);
        if (patch && limit !== null && patch.bodyBytes + piece.length >= limit) {
          piece = piece.subarray(0, limit - patch.bodyBytes);
          patch.bodyBytes += piece.length;
          patch.cut = true;
          dead = true;
          upstream.end(piece);
          client.destroy();
          return;
        }
        if (patch) patch.bodyBytes += piece.length;
        if (!upstream.write(piece)) client.pause();
        bodyLeft -= take;
        data = data.subarray(take);
      }
    });
    client.on('end', () => upstream.end());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    patches,
    cutNextPatchAfter(bytes) {
      cutAfter = bytes;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
