import type { ResponseEventLog } from './response-events.js';
import type { ChatMessage } from './schemas/chat-request.js';

/** A response kept for GET /v1/responses/{id} and for the next turn's previous_response_id. */
export interface StoredResponse {
  /** The response object as it was answered. */
  response: Readonly<Record<string, unknown>>;
  /**
   * Its conversation as chat messages, its own answer last: what a request with this
   * previous_response_id continues; null while a background response runs. Instructions are not
   * part of it (OpenAI does not carry them over).
   */
  conversation: readonly ChatMessage[] | null;
  /** The request's input, as items with ids (GET /v1/responses/{id}/input_items lists them). */
  inputItems: ReadonlyArray<Readonly<Record<string, unknown>>>;
  /** A background response created with stream: true: its stream's events, kept to be read again. */
  events?: ResponseEventLog;
  /** A background response still running: ends it, resolving once its cancelled response is stored. */
  cancel?: () => Promise<void>;
}

/**
 * Responses kept in memory (--max-stored-responses): the oldest stored goes first once the store
 * is full, so a busy server's memory stays bounded (vLLM's in-memory store grows without end).
 * Nothing is written to disk: a restart forgets them.
 */
export class ResponseStore {
  private readonly entries = new Map<string, StoredResponse>();

  constructor(readonly capacity: number) {}

  put(id: string, stored: StoredResponse): void {
    this.entries.delete(id);
    this.entries.set(id, stored);
    for (const oldest of this.entries.keys()) {
      if (this.entries.size <= this.capacity) break;
      this.entries.delete(oldest);
    }
  }

  get(id: string): StoredResponse | undefined {
    return this.entries.get(id);
  }

  delete(id: string): boolean {
    return this.entries.delete(id);
  }

  get size(): number {
    return this.entries.size;
  }
}
