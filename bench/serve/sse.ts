/**
 * Server-sent events as OpenAI-compatible servers stream them: events end at a blank line,
 * each `data:` line adds to the event's data, comments (`:`) and other fields are skipped.
 * Bytes may split anywhere, UTF-8 sequences included.
 */
export class SseParser {
  private readonly decoder = new TextDecoder();
  private buffer = '';
  private data: string[] = [];

  /** Feeds bytes; returns the data of every event they completed. */
  push(bytes: Uint8Array): string[] {
    this.buffer += this.decoder.decode(bytes, { stream: true });
    return this.drainLines();
  }

  /** The end of the stream: an event without its closing blank line still counts. */
  end(): string[] {
    this.buffer += this.decoder.decode();
    const events = this.drainLines();
    if (this.buffer !== '') events.push(...this.line(this.buffer));
    this.buffer = '';
    if (this.data.length > 0) events.push(this.data.splice(0).join('\n'));
    return events;
  }

  private drainLines(): string[] {
    const events: string[] = [];
    for (;;) {
      const end = this.buffer.search(/\r\n|\r|\n/);
      // A lone \r at the end may be the first half of \r\n: wait for the next bytes.
      if (end < 0 || (this.buffer[end] === '\r' && end === this.buffer.length - 1)) break;
      const line = this.buffer.slice(0, end);
      this.buffer = this.buffer.slice(end + (this.buffer.startsWith('\r\n', end) ? 2 : 1));
      events.push(...this.line(line));
    }
    return events;
  }

  private line(line: string): string[] {
    if (line === '') return this.data.length > 0 ? [this.data.splice(0).join('\n')] : [];
    if (line.startsWith(':')) return [];
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    if (field !== 'data') return [];
    const value = colon < 0 ? '' : line.slice(colon + 1);
    this.data.push(value.startsWith(' ') ? value.slice(1) : value);
    return [];
  }
}
