import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { OpenAiErrorBody } from './api-error.js';

/**
 * What a client hears when Node's HTTP parser refuses its request before any route sees it: the
 * status Fastify's own handler picks (408 too slow, 431 headers too large, 400 not HTTP), in
 * OpenAI's error shape like every other answer, naming the limit that was hit.
 */
export function clientErrorHandler(maxHeaderBytes: number) {
  return (error: Error & { code?: string }, socket: Socket): void => {
    if (error.code === 'ECONNRESET' || socket.destroyed) return;
    let status: number;
    let message: string;
    let code: string;
    if (error.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
      status = 408;
      message = 'the request did not arrive in time';
      code = 'request_timeout';
    } else if (error.code === 'HPE_HEADER_OVERFLOW') {
      status = 431;
      message = `the request line and headers take more than ${maxHeaderBytes} bytes, the most this server accepts (--h11-max-incomplete-event-size)`;
      code = 'request_header_fields_too_large';
    } else {
      status = 400;
      message = 'the request is not valid HTTP/1.1';
      code = 'bad_request';
    }
    const body: OpenAiErrorBody = { error: { message, type: 'invalid_request_error', param: null, code } };
    const text = JSON.stringify(body);
    if (socket.writable) {
      socket.write(
        `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Length: ${Buffer.byteLength(text)}\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n${text}`,
      );
    }
    socket.destroy(error);
  };
}
