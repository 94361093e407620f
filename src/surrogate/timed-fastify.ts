/**
 * The Fastify factory both of the surrogate's listeners are built with: HTTPS when given TLS
 * material, and a server that cuts off clients too slow to send their request.
 */
import { createServer as createHttpServer } from 'node:http'
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https'
import Fastify, {
  type FastifyInstance,
  type FastifyHttpsOptions,
  type FastifyServerFactory,
  type FastifyServerOptions,
} from 'fastify'

/** TLS material for a listener. */
export type Tls = { cert: Buffer; key: Buffer }

/**
 * A Fastify instance (HTTPS when `tls` is given) whose server cuts off a client that trickles its
 * request (slowloris): 408 once `requestTimeout` ms have passed, then the socket closes. The
 * server is built by a `serverFactory` because Node looks for such requests only every 30 s
 * unless told at construction, and Fastify does not pass that setting on (a stalled body was
 * answered after 60 s, not 1.5; found by test/push-abuse.test.ts).
 */
export function timedFastify(options: FastifyServerOptions, tls: Tls | null, requestTimeout: number): FastifyInstance {
  const settings = { requestTimeout, connectionsCheckingInterval: Math.min(1000, Math.ceil(requestTimeout / 2)) }
  const serverFactory: FastifyServerFactory = (handler) =>
    tls ? createHttpsServer({ ...tls, ...settings }, handler) : createHttpServer(settings, handler)
  // With TLS, `https` still goes to Fastify: it is what makes listen() answer https:// addresses.
  return (tls
    ? Fastify({ ...options, serverFactory, https: tls } as unknown as FastifyHttpsOptions<HttpsServer>)
    : Fastify({ ...options, serverFactory })) as unknown as FastifyInstance
}
