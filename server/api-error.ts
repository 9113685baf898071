/**
 * Errors the HTTP layer answers with, in OpenAI's shape:
 *   { "error": { "message", "type", "param", "code" } }
 * Every error a route throws on purpose is an ApiError with a fixed status and code; anything
 * else is a 500 whose message never reaches the client.
 */
export type ApiErrorType = 'invalid_request_error' | 'not_found_error' | 'server_error';

export interface OpenAiErrorBody {
  error: { message: string; type: ApiErrorType; param: string | null; code: string | null };
}

export class ApiError extends Error {
  constructor(
    readonly statusCode: number,
    readonly type: ApiErrorType,
    readonly code: string,
    message: string,
    readonly param: string | null = null,
    /** Seconds for a Retry-After header (429/503 overload only). */
    readonly retryAfterSeconds: number | null = null,
  ) {
    super(message);
    this.name = 'ApiError';
  }

  toBody(): OpenAiErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

export function invalidRequest(
  message: string,
  param: string | null = null,
  code = 'invalid_value',
): ApiError {
  return new ApiError(400, 'invalid_request_error', code, message, param);
}

export function notSupported(param: string, what: string): ApiError {
  return new ApiError(
    400,
    'invalid_request_error',
    'unsupported_parameter',
    `${what} is not supported.`,
    param,
  );
}

/** Longest piece of client input an error message repeats back. */
const MAX_ECHO_CHARS = 256;

/** Client input as an error message quotes it: a name of any length must not make a huge answer or log line. */
export function echoed(text: string): string {
  if (text.length <= MAX_ECHO_CHARS) return text;
  return `${text.slice(0, MAX_ECHO_CHARS)}… (${text.length} characters)`;
}

export function modelNotFound(model: string): ApiError {
  return new ApiError(
    404,
    'not_found_error',
    'model_not_found',
    `The model \`${echoed(model)}\` does not exist.`,
    'model',
  );
}

export function routeNotFound(method: string, url: string): ApiError {
  return new ApiError(
    404,
    'not_found_error',
    'unknown_url',
    `Unknown request URL: ${method} ${echoed(url)}. Please check the URL for typos.`,
  );
}

export function serviceUnavailable(code: string, message: string, retryAfterSeconds: number | null = null) {
  return new ApiError(503, 'server_error', code, message, null, retryAfterSeconds);
}

export function internalError(requestId: string): ApiError {
  return new ApiError(
    500,
    'server_error',
    'internal_error',
    `The server had an error while processing your request (request id ${requestId}).`,
  );
}
