// Renders every error as Graph's error JSON ({"error":{"code","message","innerError"}}),
// the one place errors meet HTTP. Unexpected errors become a 500 without internals.
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { NimbusError } from '../../shared/errors.ts';

export function graphErrorBody(req: FastifyRequest, code: string, message: string, extra: Record<string, unknown> = {}) {
  return {
    error: {
      code,
      message,
      ...extra,
      innerError: {
        date: new Date().toISOString().replace(/\.\d{3}Z$/, ''),
        'request-id': req.id,
        'client-request-id': (req.headers['client-request-id'] as string | undefined) ?? req.id,
      },
    },
  };
}

export function sendGraphError(req: FastifyRequest, reply: FastifyReply, status: number, code: string, message: string, extra: Record<string, unknown> = {}) {
  if (status === 401) reply.header('www-authenticate', 'Bearer realm="", authorization_uri="/common/oauth2/v2.0/authorize", client_id="00000003-0000-0000-c000-000000000000"');
  return reply.code(status).type('application/json').send(graphErrorBody(req, code, message, extra));
}

export function graphErrorHandler(err: FastifyError | NimbusError | Error, req: FastifyRequest, reply: FastifyReply) {
  if (err instanceof NimbusError) {
    const extra: Record<string, unknown> = {};
    if (err.target) extra.target = err.target;
    if (err.details.length) extra.details = err.details;
    return sendGraphError(req, reply, err.status, err.code, err.message, extra);
  }
  const fe = err as FastifyError;
  if (fe.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return sendGraphError(req, reply, 413, 'Request_EntityTooLarge', `The request body is larger than this endpoint accepts (${req.routeOptions.bodyLimit !== undefined ? Math.round(req.routeOptions.bodyLimit / 1048576) : 4} MB). Send fewer objects per request.`);
  if (fe.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return sendGraphError(req, reply, 415, 'Request_UnsupportedMediaType', `Unsupported Content-Type '${req.headers['content-type'] ?? ''}'. Send application/json.`);
  if (fe.statusCode !== undefined && fe.statusCode >= 400 && fe.statusCode < 500)
    return sendGraphError(req, reply, fe.statusCode, 'Request_BadRequest', `The request could not be read: ${fe.message}`);
  req.log.error({ err }, 'unhandled error');
  return sendGraphError(req, reply, 500, 'InternalServerError', `An internal error occurred. Quote request-id ${req.id} when reporting it.`);
}
