import type { TSchema } from '@sinclair/typebox';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AdapterError } from '../memory/adapter-registry.js';
import { ModelFormatError } from '../model/model-format-error.js';
import { AdmissionError } from '../scheduler/request.js';
import { anthropicErrorBody } from './anthropic-errors.js';
import {
  ApiError,
  echoed,
  internalError,
  invalidRequest,
  routeNotFound,
  serviceUnavailable,
} from './api-error.js';
import { engineApiError, engineFailureOf } from './engine-error.js';
import { rememberError } from './request-log.js';
import { textGenerationErrorBody, textGenerationStatus } from './text-generation-errors.js';

/**
 * The shape of a route's errors: 'anthropic' (its SDKs read them), 'text-generation' (LoRAX's
 * and TGI's clients read them); default OpenAI's.
 */
export type ErrorFormat = 'anthropic' | 'text-generation';

declare module 'fastify' {
  interface FastifyContextConfig {
    errorFormat?: ErrorFormat;
  }
  interface FastifyRequest {
    /** A request's own error shape, over its route's (/invocations answers as the API its body is in). */
    errorFormat: ErrorFormat | null;
  }
}

/** One ajv error as Fastify hands it over (ajv runs with `verbose`, so the failing schema is there). */
interface SchemaError {
  keyword: string;
  instancePath: string;
  params: Record<string, unknown>;
  message?: string;
  parentSchema?: { description?: string };
}

/** "/messages/0/content" → "messages[0].content", the way OpenAI names a nested parameter. */
function paramName(instancePath: string): string {
  return instancePath
    .split('/')
    .filter(Boolean)
    .map((part, i) => (/^\d+$/.test(part) ? `[${part}]` : i === 0 ? part : `.${part}`))
    .join('');
}

/**
 * `body` checked against `schema`, its errors worded as the route words them: for a route that
 * takes several request shapes, the one its body's keys choose, so an error names that shape's
 * fields rather than another's.
 */
export function validated<T>(request: FastifyRequest, schema: TSchema, body: unknown): T {
  const validate = request.compileValidationSchema(schema, 'body');
  if (!validate(body)) throw schemaErrorToApiError((validate.errors ?? []) as SchemaError[]);
  return body as T;
}

/**
 * Rewrites ajv's errors into one OpenAI-style message. A failed union reports every branch
 * and then `anyOf`. A branch whose type matched but whose value did not (a range, a length)
 * says the most; otherwise the innermost union's description ("a string or an array of
 * strings") says it better than any one branch's type error.
 */
export function schemaErrorToApiError(errors: SchemaError[]): ApiError {
  const valueError = errors.find((e) => !['type', 'anyOf'].includes(e.keyword));
  const unions = errors.filter((e) => e.keyword === 'anyOf');
  const innermostUnion = unions.reduce<SchemaError | undefined>(
    (a, b) => (a && a.instancePath.length >= b.instancePath.length ? a : b),
    undefined,
  );
  const chosen = valueError ?? innermostUnion ?? errors[0];
  const param = paramName(chosen.instancePath);
  if (chosen.keyword === 'additionalProperties') {
    const unknown = echoed(String(chosen.params.additionalProperty));
    const full = param ? `${param}.${unknown}` : unknown;
    return invalidRequest(`Unrecognized request argument supplied: ${full}.`, full, 'unknown_parameter');
  }
  if (chosen.keyword === 'required') {
    const missing = String(chosen.params.missingProperty);
    const full = param ? `${param}.${missing}` : missing;
    return invalidRequest(`Missing required parameter '${full}'.`, full, 'missing_required_parameter');
  }
  if (!param) return invalidRequest('The request body must be a JSON object.', null, 'invalid_type');
  const isTypeError = chosen.keyword === 'type' || chosen.keyword === 'anyOf';
  return invalidRequest(
    `'${param}' ${describe(chosen)}.`,
    param,
    isTypeError ? 'invalid_type' : 'invalid_value',
  );
}

function describe(error: SchemaError): string {
  const expected = error.parentSchema?.description;
  if (error.keyword === 'anyOf' && expected) return `must be ${expected}`;
  if (error.keyword === 'minLength' && error.params.limit === 1) return 'must not be empty';
  if (error.keyword === 'maxItems') return `must have at most ${error.params.limit} items`;
  return error.message ?? 'is invalid';
}

const FASTIFY_CODES: Record<string, string> = {
  FST_ERR_CTP_INVALID_JSON_BODY: 'invalid_json',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'invalid_json',
  FST_ERR_CTP_BODY_TOO_LARGE: 'request_too_large',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported_media_type',
};

/** Maps whatever a route or Fastify threw onto an ApiError; unknown errors become an opaque 500. */
export function toApiError(error: FastifyError | Error, request: FastifyRequest): ApiError {
  if (error instanceof ApiError) return error;
  if (error instanceof AdmissionError) {
    // A full queue is the client's cue to slow down (429); the rest say the server cannot serve it now.
    if (error.reason === 'queue_full')
      return new ApiError(
        429,
        'server_error',
        'server_overloaded',
        error.message,
        null,
        error.retryAfterSeconds,
      );
    return serviceUnavailable('server_overloaded', error.message, error.retryAfterSeconds);
  }
  if (error instanceof AdapterError) return adapterApiError(error);
  if (error instanceof ModelFormatError)
    return new ApiError(400, 'invalid_request_error', 'invalid_adapter', error.message);
  const fastifyError = error as FastifyError;
  if (fastifyError.validation) return schemaErrorToApiError(fastifyError.validation as SchemaError[]);
  const status = fastifyError.statusCode;
  if (status && status >= 400 && status < 500) {
    // Fastify's own 4xx (malformed JSON, wrong content type, body too large) describe the request, not us.
    const code = FASTIFY_CODES[fastifyError.code] ?? 'invalid_request';
    return new ApiError(status, 'invalid_request_error', code, error.message);
  }
  const failure = engineFailureOf(error);
  if (failure) return engineApiError(failure);
  return internalError(String(request.id));
}

/** The registry's refusals: an unknown adapter is a missing model; a bad or clashing one, the client's error. */
function adapterApiError(error: AdapterError): ApiError {
  if (error.kind === 'not_found')
    return new ApiError(404, 'not_found_error', 'model_not_found', error.message, 'model');
  const code = error.kind === 'conflict' ? 'adapter_conflict' : 'invalid_adapter';
  return new ApiError(400, 'invalid_request_error', code, error.message);
}

export function sendApiError(reply: FastifyReply, error: ApiError): FastifyReply {
  rememberError(reply.request, error);
  if (error.retryAfterSeconds !== null)
    reply.header('retry-after', String(Math.ceil(error.retryAfterSeconds)));
  const format = reply.request.errorFormat ?? reply.request.routeOptions?.config?.errorFormat;
  if (format === 'anthropic')
    return reply
      .code(error.statusCode)
      .type('application/json')
      .send(anthropicErrorBody(error.statusCode, error.toBody().error));
  if (format === 'text-generation')
    return reply
      .code(textGenerationStatus(error.statusCode))
      .type('application/json')
      .send(textGenerationErrorBody(error.statusCode, error.toBody().error));
  return reply.code(error.statusCode).type('application/json').send(error.toBody());
}

export function installErrorHandlers(app: FastifyInstance): void {
  app.decorateRequest('errorFormat', null);
  app.setErrorHandler((error: FastifyError, request, reply) => {
    // A client that leaves before its first byte (its stream torn down, "Premature close") is
    // routine under load: no one is left to answer, and it is not the server's error.
    if (reply.raw.destroyed || request.raw.socket?.destroyed) {
      request.log.info({ reason: error.message }, 'client left before the response began');
      return reply.code(499).send();
    }
    const apiError = toApiError(error, request);
    if (apiError.statusCode >= 500 && !(error instanceof ApiError || error instanceof AdmissionError)) {
      request.log.error({ err: error }, 'request failed');
    }
    return sendApiError(reply, apiError);
  });
  app.setNotFoundHandler((request, reply) => sendApiError(reply, routeNotFound(request.method, request.url)));
}
