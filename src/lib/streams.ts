// An async iterable of bytes as a web ReadableStream (a Response body), pulled chunk by chunk so
// that a slow client slows the source instead of filling memory; a client that goes away stops it.

export function toWebStream(source: AsyncIterable<Uint8Array>): ReadableStream<Uint8Array> {
  const it = source[Symbol.asyncIterator]();
  return new ReadableStream<Uint8Array>({
    async pull(ctrl) {
      try {
        const { value, done } = await it.next();
        if (done) ctrl.close();
        else ctrl.enqueue(value);
      } catch (err) {
        ctrl.error(err);
      }
    },
    async cancel() {
      await it.return?.();
    },
  });
}

/** Only audio is served as what it says it is: a PBX does not get to put a page on our origin. */
export const audioType = (type: string): string =>
  /^audio\/[\w.+-]+$/i.test(type) ? type : 'application/octet-stream';
