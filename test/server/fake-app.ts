import type { FastifyInstance } from 'fastify';
import { afterEach } from 'vitest';
import { buildApp } from '../../server/app.js';
import { fakeStack } from './fake-stack.js';

/** The app the running test built; closed after every test of the file that calls this. */
export function fakeAppPerTest() {
  let current: FastifyInstance | undefined;
  afterEach(async () => {
    await current?.close();
    current = undefined;
  });
  const app = (): FastifyInstance => {
    if (!current) throw new Error('no app: call start() first');
    return current;
  };
  return {
    get app(): FastifyInstance {
      return app();
    },
    set app(app: FastifyInstance) {
      current = app;
    },
    /** Builds the app over a fresh fake stack and returns the stack. */
    start(options: Parameters<typeof fakeStack>[0] = {}) {
      const stack = fakeStack(options);
      current = buildApp({ stack });
      return stack;
    },
    post(url: string, payload: unknown) {
      return app().inject({ method: 'POST', url, payload: payload as object });
    },
  };
}
