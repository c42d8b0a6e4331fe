/**
 * The tunnel server: a learning switch between its TAP and every client session.
 *
 * - local mode: the TAP sits beside the simulator (same container or pod network
 *   namespace), so clients are on the simulator's own Ethernet segment.
 * - separate mode: the TAP is this host's leg on the tunnel subnet; the kernel
 *   forwards and masquerades toward the target a client names with `--dest`.
 */
import { timingSafeEqual } from 'node:crypto';
import { isIPv6 } from 'node:net';
import { CtunError, ExitCode, SERVER_CIDR, TUNNEL_DEFAULTS, type Logger } from '../common/index.js';
import { parseCidr, parseDestRange, inSubnet, inTunnelIpv6, tunnelIpv6Subnet, TUNNEL_IPV6_PREFIX, TUNNEL_IPV6_PREFIX_LENGTH, type Cidr, type DestRange } from './address.js';
import { separateModeDrop } from './admission.js';
import type { FrameDevice } from './device.js';
import { LogLimiter, SourceLimiter, TokenBucket, TtlCache } from './limits.js';
import { SeparateForwarding } from './forwarding.js';
import { NetConfig } from './netconfig.js';
import {
  echoOfSession,
  encode,
  encodeErrorWithin,
  ErrorCode,
  FEATURES_NONE,
  MessageType,
  PROTOCOL_VERSION,
  TunnelMode,
  type ErrorMessage,
  type Hello,
  type Message,
  type ProtocolError,
} from './protocol.js';
import { Session } from './session.js';
import { ServerFastPath } from './server-fast-path.js';
import { TickBatch } from './batch.js';
import { addStats, createStats, type TunnelStats } from './stats.js';
import { DEFAULT_MAC_ENTRIES, LearningSwitch, type SwitchPort } from './switch.js';
import { TcpServerTransport, UdpServerTransport, type PeerLink, type ReplyBudget, type ServerTransport, type TransportKind } from './link/index.js';
import { describeProtection, loadTlsMaterial, revokedSerials, type SealFailure, type TlsMaterial } from './secure/index.js';
import { dropsByReason, type ClientFigures, type Figures } from './observe/figures.js';

export type ServerMode = 'local' | 'separate';

/**
 * Clients one server admits unless told otherwise: a lab's testers, with room to
 * spare. A session costs little (see the bench's scale section), so a site raises it.
 */
export const DEFAULT_MAX_CLIENTS = 64;

/** Most clients `--max-clients` accepts: a sanity bound, far above what one process serves. */
export const MAX_CLIENTS_LIMIT = 65_536;

/** MAC table entries per admitted client (its TAP and a few hosts behind it); never below the switch's default. */
const MACS_PER_CLIENT = 4;

function positiveCount(value: number, flag: string, max = Number.MAX_SAFE_INTEGER): number {
  if (!Number.isInteger(value) || value < 1 || value > max) {
    throw new CtunError('USAGE', `${flag} must be a whole number from 1 to ${max}, got ${value}`, { hint: `give ${flag} a count, e.g. ${flag} ${DEFAULT_MAX_CLIENTS}`, exitCode: ExitCode.Usage });
  }
  return value;
}

export interface ServerOptions {
  /** Address to bind; default 0.0.0.0. */
  listen?: string;
  /** Port; default 1723. */
  port?: number;
  /** Default udp. */
  transport?: TransportKind;
  /** Default local. */
  mode?: ServerMode;
  /** TAP name; default ctun0. */
  tap?: string;
  /** Tunnel address of the server's TAP; default 192.168.100.1/24. */
  address?: string;
  /** MTU of the TAP; default 1400 so a frame plus headers fits a 1500-byte path. */
  mtu?: number;
  /** Interval the client is told to ping at; default 1000 ms. */
  keepaliveMs?: number;
  /** A client silent this long is detached; default 10 000 ms. */
  deadAfterMs?: number;
  /** A detached session is kept this long for a resume; default 30 000 ms. */
  graceMs?: number;
  /**
   * Most clients at once (`--max-clients`), sessions in their grace period included;
   * default 64 (DEFAULT_MAX_CLIENTS). The one beyond gets ServerFull and retries.
   */
  maxSessions?: number;
  logger: Logger;
  /** Opens the TAP; the CLI passes the native TapDevice, unit tests an in-memory one. */
  openDevice: (name: string) => FrameDevice;
  net?: NetConfig;
  now?: () => number;
  /** Mutual TLS (`--tls`); plain when undefined. */
  tls?: TlsMaterial;
  /** A TCP connection must say hello within this; default 5000 ms. */
  helloTimeoutMs?: number;
  /** Most TCP connections waiting for their hello at once; default 128. */
  maxPending?: number;
  /**
   * Separate mode: destinations a client may name with --dest (CIDRs, `--allow-dest`);
   * default: any the server has a route to.
   */
  allowDest?: string[];
  /** Clients reach the server's TAP but not each other (`--isolate-clients`); default false. */
  isolateClients?: boolean;
  /** Most sessions created from one IP address; default 16. */
  maxSessionsPerSource?: number;
  /**
   * Data frames of plain UDP and TCP sessions cross the server natively where the switch and
   * policy would pass them (server-fast-path.ts); default true, false keeps every
   * frame in JavaScript (`--fast-path off`).
   */
  fastPath?: boolean;
}

/** What the security layer refused or dropped, for statistics. */
export interface SecurityStats {
  /** Peers refused: certificate not from the CA, expired, revoked, or ours refused. */
  refused: number;
  /** TLS handshakes that failed otherwise (not TLS, went away, timed out). */
  handshakeFailed: number;
  /** TCP connections closed before their hello (timeout, or too many waiting). */
  pendingDropped: number;
  /** Sealed datagrams dropped unopened, by reason. */
  sealDrops: Record<SealFailure, number>;
  /** Replies not sent: over the per-source rate, or larger than the datagram that asked (plain UDP). */
  repliesSuppressed: number;
  /** Hellos refused: per-source session cap, destination not admitted, too many route lookups at once. */
  hellosRefused: number;
  /** Resumes refused: another certificate, another address, or no matching resume token. */
  resumeRefused: number;
  /** Sessions that never confirmed their hello, dropped to make room (spoofed hellos). */
  unconfirmedEvicted: number;
}

export class TunnelServer {
  private readonly o: Required<Omit<ServerOptions, 'net' | 'now' | 'tls' | 'helloTimeoutMs' | 'maxPending' | 'fastPath'>> & Pick<ServerOptions, 'tls' | 'helloTimeoutMs' | 'maxPending' | 'fastPath'> & { net: NetConfig; now: () => number };
  readonly security: SecurityStats = {
    refused: 0,
    handshakeFailed: 0,
    pendingDropped: 0,
    sealDrops: { truncated: 0, 'not-sealed': 0, 'unknown-key': 0, 'bad-tag': 0, replayed: 0, 'too-old': 0, exhausted: 0 },
    repliesSuppressed: 0,
    hellosRefused: 0,
    resumeRefused: 0,
    unconfirmedEvicted: 0,
  };
  private readonly cidr: Cidr;
  private readonly allowed: DestRange[];
  private readonly sw: LearningSwitch;
  private readonly sessions = new Map<string, Session>();
  private readonly byLink = new Map<PeerLink, Session>();
  /** Sessions per creator address, for the per-source cap. */
  private readonly perSource = new Map<string, number>();
  /** Hellos and replies from peers without a session: per source and overall. */
  private readonly strangers = new SourceLimiter();
  /** Replies to each session (pongs): a spoofer of a client's address reflects at most this. */
  private readonly sessionReplies = new WeakMap<Session, TokenBucket>();
  private readonly logLimit = new LogLimiter();
  /** `ip route get` answers (a problem text, or '' for fine), so hellos do not spawn processes. */
  private readonly routeCache = new TtlCache<string>(10_000, 1024);
  private readonly lookups = new Map<string, Promise<string>>();
  /** Separate mode's kernel rules (forwarding, NAT, MSS clamping, admitted destinations). */
  private forwarding: SeparateForwarding | undefined;
  private device: FrameDevice | undefined;
  private tapPort: SwitchPort | undefined;
  private transport: ServerTransport | undefined;
  /** Open while the server runs on plain UDP (the addon's socket) or plain TCP, with the real TAP (server-fast-path.ts). */
  private fast: ServerFastPath | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** Totals of sessions that have ended, so statistics at exit cover everyone. */
  private readonly ended: TunnelStats = createStats();
  readonly tapStats: TunnelStats = createStats();
  private stopped = false;
  /** The socket is bound (for /readyz). */
  private bound = false;

  constructor(options: ServerOptions) {
    this.o = {
      listen: options.listen ?? '0.0.0.0',
      port: options.port ?? TUNNEL_DEFAULTS.port,
      transport: options.transport ?? TUNNEL_DEFAULTS.transport,
      mode: options.mode ?? 'local',
      tap: options.tap ?? TUNNEL_DEFAULTS.serverTap,
      address: options.address ?? SERVER_CIDR,
      mtu: options.mtu ?? TUNNEL_DEFAULTS.mtu,
      keepaliveMs: options.keepaliveMs ?? 1000,
      deadAfterMs: options.deadAfterMs ?? 10_000,
      graceMs: options.graceMs ?? 30_000,
      maxSessions: positiveCount(options.maxSessions ?? DEFAULT_MAX_CLIENTS, '--max-clients', MAX_CLIENTS_LIMIT),
      logger: options.logger,
      openDevice: options.openDevice,
      net: options.net ?? new NetConfig(),
      now: options.now ?? Date.now,
      tls: options.tls,
      helloTimeoutMs: options.helloTimeoutMs,
      maxPending: options.maxPending,
      allowDest: options.allowDest ?? [],
      isolateClients: options.isolateClients ?? false,
      maxSessionsPerSource: positiveCount(options.maxSessionsPerSource ?? 16, '--max-sessions-per-source'),
      fastPath: options.fastPath,
    };
    this.cidr = parseCidr(this.o.address, 24, '--address');
    this.allowed = this.o.allowDest.map((c) => parseDestRange(c, '--allow-dest'));
    if (this.allowed.length > 0 && this.o.mode !== 'separate') {
      throw new CtunError('USAGE', '--allow-dest applies to --mode separate only', { hint: 'drop --allow-dest, or run with --mode separate', exitCode: ExitCode.Usage });
    }
    // The MAC table grows with the clients admitted, so a full server still learns every client's MAC.
    this.sw = new LearningSwitch({
      isolateClients: this.o.isolateClients,
      now: this.o.now,
      maxEntries: Math.max(DEFAULT_MAC_ENTRIES, MACS_PER_CLIENT * this.o.maxSessions),
      onChange: (mac, port) => this.fast?.switchChanged(mac, port),
    });
  }

  get log(): Logger {
    return this.o.logger;
  }

  /** Brings up the TAP (and NAT in separate mode), then listens. Undoes it all on failure. */
  async start(): Promise<{ address: string; port: number }> {
    try {
      this.device = this.o.openDevice(this.o.tap);
      await this.o.net.setAddressAndUp(this.device.name, this.cidr.text, this.o.mtu, stableMac(this.cidr.address));
      if (this.o.mode === 'separate') {
        this.forwarding = new SeparateForwarding({
          net: this.o.net,
          tap: this.o.tap,
          cidr: this.cidr,
          logger: this.log,
          now: this.o.now,
          admits: this.allowed.length > 0 ? `admitted --dest within ${this.allowed.map((c) => c.text).join(',')}` : 'admitted --dest only',
        });
        await this.forwarding.start();
      }
      this.attachTap(this.device);
      const handlers = {
        message: (link: PeerLink, m: Message, budget?: ReplyBudget) => this.onMessage(link, m, budget),
        invalid: (link: PeerLink, e: ProtocolError, budget?: ReplyBudget) => this.onInvalid(link, e, budget),
        closed: (link: PeerLink) => this.onLinkClosed(link),
        refused: (peer: string, reason: string, refusal: boolean) => this.onRefused(peer, reason, refusal),
        dropped: (reason: SealFailure) => {
          this.security.sealDrops[reason]++;
          this.ended.dropsInvalid++;
        },
        moved: (link: PeerLink) => {
          const session = this.byLink.get(link);
          if (session !== undefined && session.link === link) this.fast?.track(session);
        },
        pendingDropped: (peer: string, reason: 'timeout' | 'evicted') => {
          this.security.pendingDropped++;
          this.logSecurity('debug', 'connection-dropped', { peer, reason: reason === 'timeout' ? 'no hello in time' : 'too many connections waiting for their hello' });
        },
      };
      const opts = { host: this.o.listen, port: this.o.port, handlers, tls: this.o.tls, helloTimeoutMs: this.o.helloTimeoutMs, maxPending: this.o.maxPending };
      this.transport = this.o.transport === 'udp' ? new UdpServerTransport(opts) : new TcpServerTransport(opts);
      const bound = await this.transport.listen();
      this.bound = true;
      this.openFastPath();
      this.timer = setInterval(() => this.sweep(), Math.min(1000, this.o.keepaliveMs)).unref();
      this.log.info('server-listening', {
        transport: this.o.transport,
        address: bound.address,
        port: bound.port,
        mode: this.o.mode,
        tap: this.device.name,
        tunnel: this.cidr.text,
        security: describeProtection(this.o.tls, this.o.transport),
      });
      const exposure = this.exposure(bound.address, bound.port);
      if (exposure !== undefined) this.log.warn('plain-mode-exposed', { reason: exposure });
      for (const w of this.o.tls?.warnings ?? []) this.log.warn('tls-warning', { reason: w });
      return bound;
    } catch (e) {
      await this.stop('start failed');
      throw e;
    }
  }

  /** Hands data frames to the addon where the transport and TAP allow it (plain UDP or TCP, the real TAP). */
  private openFastPath(): void {
    const tap = this.device?.fastPath;
    const socket = this.transport?.fastPath;
    if (this.o.fastPath === false || tap === undefined || socket === undefined) return;
    this.fast = ServerFastPath.open(tap, socket, {
      tapMac: stableMac(this.cidr.address),
      separate: this.o.mode === 'separate',
      serverAddress: this.cidr.address,
      sw: this.sw,
      tapStats: this.tapStats,
      now: this.o.now,
    });
    this.log.debug('fast-path-on', { tap: this.o.tap });
  }

  /** One line saying what anyone who reaches a plain server can do, or undefined (TLS, or loopback only). */
  private exposure(address: string, port: number): string | undefined {
    if (this.o.tls !== undefined || /^127\.|^::1$|^localhost$/.test(address)) return undefined;
    const subnet = `${this.cidr.network}/${this.cidr.prefix}`;
    const what =
      this.o.mode === 'local'
        ? `join the Ethernet segment of ${this.o.tap} (${subnet}) and reach every host and port on it`
        : `reach, through this server's NAT, ${this.allowed.length > 0 ? `any host in ${this.allowed.map((c) => c.text).join(', ')}` : 'any host this server has a route to'} (one --dest per session)`;
    return `plain mode on ${address.includes(':') ? `[${address}]` : address}:${port}: anyone who reaches ${this.o.transport.toUpperCase()} port ${port} can, without credentials, ${what}; use --tls outside a trusted lab network`;
  }

  private attachTap(device: FrameDevice): void {
    const stats = this.tapStats;
    const toTap = new TickBatch((batch) => {
      const written = device.writeFrames(batch);
      stats.framesOut += written;
      for (let i = 0; i < written; i++) stats.bytesOut += batch[i]!.length;
      stats.dropsQueue += batch.length - written;
    });
    const port: SwitchPort = {
      id: `tap:${device.name}`,
      uplink: true,
      deliver: (frame) => {
        toTap.push(frame);
        return true;
      },
    };
    this.tapPort = port;
    this.sw.addPort(port);
    // The server's MAC is the server's: no client can claim it and take its traffic.
    this.sw.pin(stableMac(this.cidr.address), port);
    device.onFrames((frames) => {
      stats.framesIn += frames.length;
      for (const f of frames) {
        stats.bytesIn += f.length;
        if (f.length >= 14) this.sw.forward(f, port);
      }
    });
  }

  /**
   * Sends a reply. On plain UDP (`budget` set) replies to strangers are rate-limited
   * per source and overall, replies to a session (pongs) per session; then sendWithin.
   */
  private reply(link: PeerLink, message: Message, budget: ReplyBudget | undefined, now: number): boolean {
    if (budget !== undefined) {
      const session = this.byLink.get(link);
      const allowed = session === undefined ? this.strangers.allow(link.source, now) : this.sessionBucket(session, now).take(now);
      if (!allowed) {
        this.security.repliesSuppressed++;
        return false;
      }
    }
    return this.sendWithin(link, message, budget);
  }

  /**
   * Sends within a datagram's budget (plain UDP): at most one reply per datagram and
   * never more bytes than it had (an Error's reason is cut to fit). Unbounded on TCP
   * and for sealed datagrams (authenticated peers).
   */
  private sendWithin(link: PeerLink, message: Message, budget: ReplyBudget | undefined): boolean {
    if (budget === undefined) return link.send(encode(message));
    const bytes = message.type === MessageType.Error ? encodeErrorWithin(message, budget.bytes) : encode(message);
    if (bytes === undefined || budget.replies < 1 || bytes.length > budget.bytes) {
      this.security.repliesSuppressed++;
      return false;
    }
    budget.replies--;
    budget.bytes -= bytes.length;
    return link.send(bytes);
  }

  private sessionBucket(session: Session, now: number): TokenBucket {
    let b = this.sessionReplies.get(session);
    if (b === undefined) {
      b = new TokenBucket(20, 20, now);
      this.sessionReplies.set(session, b);
    }
    return b;
  }

  /** A log line that a flood cannot multiply: a burst, then one a second, with the count held back. */
  private logLimited(level: 'info' | 'warn', event: string, fields: Record<string, unknown>): void {
    const pass = this.logLimit.pass(event, this.o.now());
    if (pass === undefined) return;
    this.log[level](event, { ...fields, ...pass });
  }

  private onMessage(link: PeerLink, m: Message, budget?: ReplyBudget): void {
    const now = this.o.now();
    const session = this.byLink.get(link);
    if (session !== undefined) {
      session.lastSeen = now;
      if (m.type !== MessageType.Hello) session.confirmed = true;
    }
    switch (m.type) {
      case MessageType.Hello:
        void this.onHello(link, m, now, budget);
        return;
      case MessageType.Data:
        if (session === undefined) return this.notifyNoSession(link, now, budget);
        session.stats.framesIn++;
        session.stats.bytesIn += m.frame.length;
        if (this.o.mode === 'separate') {
          const drop = separateModeDrop(m.frame, { destination: session.destination, server: this.cidr.address, server6: this.forwarding?.ipv6Address });
          if (drop !== undefined) {
            session.stats.dropsPolicy++;
            this.logLimited('info', 'frame-dropped', { session: session.id.slice(0, 8), reason: drop });
            return;
          }
        }
        if (!this.sw.forward(m.frame, session)) session.stats.dropsPolicy++;
        return;
      case MessageType.Ping:
        if (session === undefined) return this.notifyNoSession(link, now, budget);
        this.reply(link, { type: MessageType.Pong, nonce: m.nonce }, budget, now);
        return;
      case MessageType.Bye:
        if (session !== undefined) this.endSession(session, `client said bye: ${m.reason}`);
        return;
      default:
        // Welcome, Error and Pong are server-to-client messages; a client sending
        // them is confused but harmless.
        return;
    }
  }

  private async onHello(link: PeerLink, hello: Hello, now: number, budget: ReplyBudget | undefined): Promise<void> {
    const known = this.byLink.get(link);
    // A stranger's hellos are rate-limited before any work (route lookups, state).
    if (budget !== undefined && !(known === undefined ? this.strangers.allow(link.source, now) : this.sessionBucket(known, now).take(now))) {
      this.security.hellosRefused++;
      return;
    }
    // v2 hellos get errors that echo their session id: a plain client trusts only those.
    const echo = hello.version >= 2 ? echoOfSession(hello.sessionId) : undefined;
    const reject = (code: ErrorCode, reason: string): void => {
      if (code === ErrorCode.ResumeRefused) this.security.resumeRefused++;
      else this.security.hellosRefused++;
      this.logLimited('warn', 'client-rejected', { peer: link.id, code: ErrorCode[code], reason });
      // The rate check at the top already counted this hello: its one reply needs no second token.
      this.sendWithin(link, { type: MessageType.Error, code, reason, echo } satisfies ErrorMessage, budget);
      if (link.transport === 'tcp') link.close();
    };
    const id = hello.sessionId.toString('hex');
    if (hello.destination !== undefined) {
      if (this.o.mode !== 'separate') {
        return reject(ErrorCode.ModeMismatch, `this server runs in local mode and routes no --dest; connect without --dest, or run the server with --mode separate`);
      }
      const problem = await this.checkDestination(hello.destination, now);
      if (problem === 'busy') {
        this.security.hellosRefused++;
        return; // too many lookups at once: the client says hello again in 500 ms
      }
      if (problem !== undefined) return reject(ErrorCode.DestinationRejected, problem);
    }
    if (this.stopped) return;
    let session = this.sessions.get(id);
    const resumed = session !== undefined;
    if (session !== undefined) {
      const refusal = this.resumeRefusal(session, link, hello);
      if (refusal !== undefined) return reject(ErrorCode.ResumeRefused, refusal);
      const old = session.link;
      if (old !== undefined && old !== link) {
        this.byLink.delete(old);
        if (old.transport === 'tcp') old.close();
      }
      session.attach(link, now);
    } else {
      if ((this.perSource.get(link.source) ?? 0) >= this.o.maxSessionsPerSource) {
        return reject(ErrorCode.ServerFull, `${link.source} has its maximum of ${this.o.maxSessionsPerSource} sessions`);
      }
      if (this.sessions.size >= this.o.maxSessions && !this.evictUnconfirmed()) return reject(ErrorCode.ServerFull, `server has its maximum of ${this.o.maxSessions} clients (--max-clients)`);
      if (hello.destination !== undefined) {
        try {
          await this.forwarding?.admit(hello.destination);
        } catch (e) {
          return reject(ErrorCode.DestinationRejected, `the server could not admit ${hello.destination}: ${(e as Error).message}`);
        }
        if (this.stopped) return this.forwarding?.release(hello.destination);
      }
      session = new Session(id, link, hello.destination, now, { source: link.source, identityKey: link.identityKey, version: hello.version });
      // Only a plain UDP hello can come from a spoofed address; TCP's handshake and TLS prove theirs.
      session.confirmed = budget === undefined;
      this.sessions.set(id, session);
      this.perSource.set(link.source, (this.perSource.get(link.source) ?? 0) + 1);
      this.sw.addPort(session);
    }
    link.retain?.();
    this.byLink.set(link, session);
    this.fast?.track(session);
    const welcome: Message = {
      type: MessageType.Welcome,
      version: Math.min(hello.version, PROTOCOL_VERSION),
      resumed,
      mtu: this.o.mtu,
      sessionId: hello.sessionId,
      // An IPv6 --dest is routed via the server's IPv6 tunnel address (set up when it was admitted).
      ...this.nextHop(hello.destination),
      keepaliveMs: this.o.keepaliveMs,
      flags: hello.flags & (link.features ?? FEATURES_NONE),
      resumeToken: session.resumeToken,
    };
    this.sendWithin(link, welcome, budget);
    // TCP --tls: the link switched to sealed records; its connection joins the fast path now.
    if (link.welcomed?.(welcome.flags ?? FEATURES_NONE) === true) this.fast?.track(session);
    this.logLimited('info', resumed ? 'client-resumed' : 'client-connected', {
      peer: link.id,
      ...(link.identity === undefined ? {} : { identity: link.identity }),
      session: id.slice(0, 8),
      transport: link.transport,
      version: hello.version,
      mode: hello.mode === TunnelMode.Separate ? 'separate' : 'local',
      dest: hello.destination,
      clients: this.sessions.size,
    });
  }

  /** The server's tunnel address and prefix in the family of `dest`: what a welcome tells the client to route through. */
  private nextHop(dest: string | undefined): { serverAddress: string; prefix: number } {
    const six = this.forwarding?.nextHopFor(dest);
    return six === undefined ? { serverAddress: this.cidr.address, prefix: this.cidr.prefix } : { serverAddress: six, prefix: tunnelIpv6Subnet(this.cidr).prefix };
  }

  /**
   * Why `link` may not resume `session`, or undefined: with --tls the certificate must
   * be the creator's; in plain mode the address must be, and a v2 session's resume must
   * present the token of its welcome (a v1 session has none: the address alone).
   */
  private resumeRefusal(session: Session, link: PeerLink, hello: Hello): string | undefined {
    const owner = session.owner;
    if (owner.identityKey !== undefined || link.identityKey !== undefined) {
      return owner.identityKey === link.identityKey ? undefined : 'session belongs to another certificate';
    }
    if (owner.source !== link.source) return 'session belongs to another address; start a new one';
    if (owner.version >= 2) {
      const token = hello.resumeToken;
      if (hello.version < 2 || token === undefined || token.length !== session.resumeToken.length || !timingSafeEqual(token, session.resumeToken)) {
        return 'resume without the session\'s token; start a new one';
      }
    }
    return undefined;
  }

  /** Makes room by ending the oldest session that never confirmed its hello (a spoofed one). */
  private evictUnconfirmed(): boolean {
    for (const s of this.sessions.values()) {
      if (!s.confirmed) {
        this.security.unconfirmedEvicted++;
        this.endSession(s, 'evicted: never confirmed its hello, and the server is full');
        return true;
      }
    }
    return false;
  }

  /**
   * In separate mode a destination must be admitted by --allow-dest, reachable, and not
   * through the tunnel itself. Lookups are cached and at most 8 run at once ('busy').
   */
  private async checkDestination(dest: string, now: number): Promise<string | undefined> {
    const six = isIPv6(dest);
    if (six ? inTunnelIpv6(dest) : inSubnet(dest, this.cidr)) {
      return `destination ${dest} is inside the tunnel subnet ${six ? `${TUNNEL_IPV6_PREFIX}/${TUNNEL_IPV6_PREFIX_LENGTH}` : `${this.cidr.network}/${this.cidr.prefix}`}; give the target's own address`;
    }
    if (this.allowed.length > 0 && !this.allowed.some((c) => c.contains(dest))) {
      return `destination ${dest} is not admitted by this server (--allow-dest ${this.allowed.map((c) => c.text).join(', ')})`;
    }
    const cached = this.routeCache.get(dest, now);
    if (cached !== undefined) return cached === '' ? undefined : cached;
    let pending = this.lookups.get(dest);
    if (pending === undefined) {
      if (this.lookups.size >= 8) return 'busy';
      pending = this.lookUpRoute(dest).finally(() => this.lookups.delete(dest));
      this.lookups.set(dest, pending);
    }
    const problem = await pending;
    return problem === '' ? undefined : problem;
  }

  private async lookUpRoute(dest: string): Promise<string> {
    const route = await this.o.net.routeTo(dest);
    const problem = route === undefined ? `the server has no route to destination ${dest}` : route.dev === this.o.tap ? `destination ${dest} routes back into the tunnel` : '';
    this.routeCache.set(dest, problem, this.o.now());
    return problem;
  }

  /** Tells an unknown peer (typically: this server restarted) to say hello again, within the reply limits. */
  private notifyNoSession(link: PeerLink, now: number, budget: ReplyBudget | undefined): void {
    this.reply(link, { type: MessageType.Error, code: ErrorCode.NoSession, reason: 'no session for this peer; send hello' }, budget, now);
  }

  private onInvalid(link: PeerLink, e: ProtocolError, budget?: ReplyBudget): void {
    this.ended.dropsInvalid++;
    // Rate-limited: a flood of garbage must not become a flood of log lines.
    this.logLimited('warn', 'invalid-message', { peer: link.id, code: ErrorCode[e.code], reason: e.message });
    // Only a peer that speaks our protocol (a hello with our magic) gets an answer
    // on UDP, within the datagram's budget; answering arbitrary datagrams would make us a reflector.
    if (link.transport === 'tcp' || e.code === ErrorCode.VersionMismatch) {
      this.reply(link, { type: MessageType.Error, code: e.code, reason: e.message, echo: e.echo }, budget, this.o.now());
    }
  }

  /** A refused TLS peer: always counted, logged with its reason (rate-limited against floods). */
  private onRefused(peer: string, reason: string, refusal: boolean): void {
    if (refusal) this.security.refused++;
    else this.security.handshakeFailed++;
    this.logSecurity(refusal ? 'warn' : 'debug', refusal ? 'client-refused' : 'tls-handshake-failed', { peer, reason });
  }

  private logSecurity(level: 'warn' | 'debug', event: string, fields: Record<string, string>): void {
    if (level === 'debug') return this.log.debug(event, fields);
    this.logLimited('warn', event, fields);
  }

  private onLinkClosed(link: PeerLink): void {
    const session = this.byLink.get(link);
    this.byLink.delete(link);
    if (session === undefined || session.link !== link) return;
    // A session that never confirmed its hello has nobody to keep a grace period for.
    if (!session.confirmed) return this.endSession(session, 'link closed before the hello was confirmed');
    session.detach(this.o.now());
    this.fast?.track(session);
    this.log.info('client-detached', { peer: link.id, session: session.id.slice(0, 8), graceMs: this.o.graceMs });
  }

  private sweep(): void {
    // First: traffic the native path carried keeps its sessions alive and MACs learned.
    this.fast?.sync();
    const now = this.o.now();
    for (const session of this.sessions.values()) {
      if (!session.confirmed && now - session.lastSeen > this.o.deadAfterMs) {
        // Never said anything after its hello: nobody to keep a grace period for.
        this.endSession(session, 'hello never confirmed');
      } else if (session.link !== undefined && now - session.lastSeen > this.o.deadAfterMs) {
        const link = session.link;
        this.log.warn('client-silent', { peer: link.id, session: session.id.slice(0, 8), silentMs: now - session.lastSeen });
        this.byLink.delete(link);
        link.close();
        session.detach(now);
        this.fast?.track(session);
      } else if (session.link === undefined && session.detachedAt !== undefined && now - session.detachedAt > this.o.graceMs) {
        this.endSession(session, 'grace period over');
      }
    }
    this.sw.expire(now);
  }

  private endSession(session: Session, reason: string): void {
    if (this.sessions.get(session.id) !== session) return;
    this.sessions.delete(session.id);
    const n = (this.perSource.get(session.owner.source) ?? 1) - 1;
    if (n > 0) this.perSource.set(session.owner.source, n);
    else this.perSource.delete(session.owner.source);
    if (session.destination !== undefined) this.forwarding?.release(session.destination);
    if (session.link !== undefined) {
      this.byLink.delete(session.link);
      if (session.link.transport === 'tcp') session.link.close();
      else session.link.close();
    }
    session.detach(this.o.now());
    this.fast?.remove(session);
    this.sw.removePort(session);
    addStats(this.ended, session.stats);
    this.logLimited('info', 'session-ended', { session: session.id.slice(0, 8), reason, clients: this.sessions.size });
  }

  /**
   * Reloads the TLS files (SIGHUP): a new CRL applies to new connections at once, and
   * live sessions of certificates it revokes are cut (they reconnect and are refused).
   * A file that no longer loads keeps the old material and says why.
   */
  async reloadTls(): Promise<{ revoked: number; cut: number } | undefined> {
    const current = this.o.tls;
    if (current === undefined || this.transport?.reloadTls === undefined) {
      this.log.warn('reload-skipped', { reason: 'no --tls: nothing to reload' });
      return undefined;
    }
    let material: TlsMaterial;
    let revoked: Set<string>;
    try {
      material = loadTlsMaterial(current.files);
      revoked = material.crl === undefined ? new Set() : await revokedSerials(material.crl);
    } catch (e) {
      this.log.error('reload-failed', { reason: (e as Error).message, kept: 'the previous certificates and CRL' });
      return undefined;
    }
    this.o.tls = material;
    const cut = this.transport.reloadTls(material, revoked);
    this.log.info('tls-reloaded', { crl: current.files.crl ?? 'none', revoked: revoked.size, sessionsCut: cut });
    return { revoked: revoked.size, cut };
  }

  /** Sessions alive (attached or in grace), for tests and status. */
  get sessionCount(): number {
    return this.sessions.size;
  }

  /** Statistics of every session so far plus the TAP, for SIGUSR1 and exit. */
  stats(): { clients: TunnelStats; tap: TunnelStats; sessions: number; peers: number; macs: number; security: SecurityStats; switch: { spoofed: number; isolated: number }; fastPath: { rx: number; tx: number } } {
    this.fast?.sync();
    const clients = createStats();
    addStats(clients, this.ended);
    for (const s of this.sessions.values()) addStats(clients, s.stats);
    clients.dropsInvalid += this.transport?.filteredDatagrams?.() ?? 0;
    return {
      clients,
      tap: { ...this.tapStats },
      sessions: this.sessions.size,
      peers: this.transport?.keptPeers?.() ?? this.byLink.size,
      macs: this.sw.size,
      security: { ...this.security, sealDrops: { ...this.security.sealDrops } },
      switch: { spoofed: this.sw.counters.spoofed, isolated: this.sw.counters.isolated },
      // Frames the native path moved (in `clients` too), as of the sync above.
      fastPath: { ...(this.fast?.frames ?? { rx: 0, tx: 0 }) },
    };
  }

  /**
   * The figures for metrics and status: totals over every session so far, drops by
   * reason (sealed-datagram drops are counted once, under their own reason, not also
   * as invalid), and one entry per live session.
   */
  figures(): Figures {
    const s = this.stats();
    const sec = s.security;
    const drops = dropsByReason(s.clients, sec.sealDrops);
    Object.assign(drops, {
      refused: sec.refused,
      'handshake-failed': sec.handshakeFailed,
      'hello-refused': sec.hellosRefused,
      'resume-refused': sec.resumeRefused,
      'pending-dropped': sec.pendingDropped,
      'replies-suppressed': sec.repliesSuppressed,
    });
    const clients: ClientFigures[] = [...this.sessions.values()].map((x) => ({
      session: x.id.slice(0, 8),
      peer: x.link?.id,
      identity: x.link?.identity,
      since: new Date(x.attachedAt).toISOString(),
      attached: x.attached,
      dest: x.destination,
      bytes: { rx: x.stats.bytesIn, tx: x.stats.bytesOut },
      frames: { rx: x.stats.framesIn, tx: x.stats.framesOut },
      drops: x.stats.dropsQueue + x.stats.dropsInvalid + x.stats.dropsPolicy,
    }));
    return {
      role: 'server',
      frames: { rx: s.clients.framesIn, tx: s.clients.framesOut },
      bytes: { rx: s.clients.bytesIn, tx: s.clients.bytesOut },
      drops,
      sessions: s.sessions,
      macs: s.macs,
      clients,
      fastPath: s.fastPath,
    };
  }

  /**
   * What `/readyz` checks: the TAP still exists (someone may delete it under us) and
   * the socket is bound (started, not stopped).
   */
  async readiness(): Promise<Record<string, boolean>> {
    const tap = this.device === undefined || this.stopped ? false : (await this.o.net.link(this.device.name).catch(() => undefined)) !== undefined;
    return { tap, socket: this.bound && !this.stopped };
  }

  /** Stops everything it started: sessions get a bye, NAT rules go, the TAP closes. Idempotent. */
  async stop(reason = 'stopped'): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    for (const s of this.sessions.values()) {
      s.link?.send(encode({ type: MessageType.Bye, reason: `server ${reason}` }));
    }
    // Let the byes leave before the socket closes, so clients reconnect at once.
    if (this.sessions.size > 0) await new Promise((r) => setTimeout(r, 20));
    // The last counters first: the socket and TAP close the path too, without a sync.
    this.fast?.close();
    await this.transport?.close().catch(() => {});
    // NAT and forwarding rules go; forwarding goes back off if this server turned it on.
    await this.forwarding?.stop();
    this.device?.close();
  }
}

/**
 * The server TAP's MAC is derived from its tunnel address (02:c7 + the four address
 * bytes, locally administered). A restarted server then has the MAC it had before,
 * so the clients' ARP caches stay right and traffic resumes at once.
 */
export function stableMac(address: string): string {
  return ['02', 'c7', ...address.split('.').map((b) => Number(b).toString(16).padStart(2, '0'))].join(':');
}

export function assertServerMode(mode: string): ServerMode {
  if (mode !== 'local' && mode !== 'separate') {
    throw new CtunError('USAGE', `--mode must be local or separate, got "${mode}"`, { exitCode: ExitCode.Usage });
  }
  return mode;
}
