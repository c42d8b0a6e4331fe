/**
 * The tunnel server: a learning switch between its TAP and every client session.
 *
 * - local mode: the TAP sits beside the simulator (same container or pod network
 *   namespace), so clients are on the simulator's own Ethernet segment.
 * - separate mode: the TAP is this host's leg on the tunnel subnet; the kernel
 *   forwards and masquerades toward the target a client names with `--dest`.
 */
import { randomBytes } from 'node:crypto';
import { CtunError, ExitCode, type Logger } from '../common/index.js';
import { parseCidr, inSubnet, type Cidr } from './address.js';
import type { FrameDevice } from './device.js';
import { NetConfig } from './netconfig.js';
import { encode, ErrorCode, MessageType, PROTOCOL_VERSION, TunnelMode, type Hello, type Message, type ProtocolError } from './protocol.js';
import { Session } from './session.js';
import { TickBatch } from './batch.js';
import { addStats, createStats, type TunnelStats } from './stats.js';
import { LearningSwitch, type SwitchPort } from './switch.js';
import { TcpServerTransport, UdpServerTransport, type PeerLink, type ServerTransport, type TransportKind } from './transport.js';
import { describeProtection, type SealFailure, type TlsMaterial } from './secure/index.js';

export type ServerMode = 'local' | 'separate';

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
  /** Most clients at once; default 64. */
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
}

type Rule = { table: string; chain: string; rule: string[] };

export class TunnelServer {
  private readonly o: Required<Omit<ServerOptions, 'net' | 'now' | 'tls' | 'helloTimeoutMs' | 'maxPending'>> & Pick<ServerOptions, 'tls' | 'helloTimeoutMs' | 'maxPending'> & { net: NetConfig; now: () => number };
  readonly security: SecurityStats = {
    refused: 0,
    handshakeFailed: 0,
    pendingDropped: 0,
    sealDrops: { truncated: 0, 'not-sealed': 0, 'unknown-key': 0, 'bad-tag': 0, replayed: 0, 'too-old': 0, exhausted: 0 },
  };
  private securityLogged = 0;
  private readonly cidr: Cidr;
  private readonly sw = new LearningSwitch();
  private readonly sessions = new Map<string, Session>();
  private readonly byLink = new Map<PeerLink, Session>();
  private readonly noSessionNotified = new Map<string, number>();
  private device: FrameDevice | undefined;
  private tapPort: SwitchPort | undefined;
  private transport: ServerTransport | undefined;
  private timer: NodeJS.Timeout | undefined;
  private rules: Rule[] = [];
  private invalidLogged = 0;
  /** Totals of sessions that have ended, so statistics at exit cover everyone. */
  private readonly ended: TunnelStats = createStats();
  readonly tapStats: TunnelStats = createStats();
  private stopped = false;

  constructor(options: ServerOptions) {
    this.o = {
      listen: options.listen ?? '0.0.0.0',
      port: options.port ?? 1723,
      transport: options.transport ?? 'udp',
      mode: options.mode ?? 'local',
      tap: options.tap ?? 'ctun0',
      address: options.address ?? '192.168.100.1/24',
      mtu: options.mtu ?? 1400,
      keepaliveMs: options.keepaliveMs ?? 1000,
      deadAfterMs: options.deadAfterMs ?? 10_000,
      graceMs: options.graceMs ?? 30_000,
      maxSessions: options.maxSessions ?? 64,
      logger: options.logger,
      openDevice: options.openDevice,
      net: options.net ?? new NetConfig(),
      now: options.now ?? Date.now,
      tls: options.tls,
      helloTimeoutMs: options.helloTimeoutMs,
      maxPending: options.maxPending,
    };
    this.cidr = parseCidr(this.o.address, 24, '--address');
  }

  get log(): Logger {
    return this.o.logger;
  }

  /** Brings up the TAP (and NAT in separate mode), then listens. Undoes it all on failure. */
  async start(): Promise<{ address: string; port: number }> {
    try {
      this.device = this.o.openDevice(this.o.tap);
      await this.o.net.setAddressAndUp(this.device.name, this.cidr.text, this.o.mtu, stableMac(this.cidr.address));
      if (this.o.mode === 'separate') await this.setUpForwarding();
      this.attachTap(this.device);
      const handlers = {
        message: (link: PeerLink, m: Message) => this.onMessage(link, m),
        invalid: (link: PeerLink, e: ProtocolError) => this.onInvalid(link, e),
        closed: (link: PeerLink) => this.onLinkClosed(link),
        refused: (peer: string, reason: string, refusal: boolean) => this.onRefused(peer, reason, refusal),
        dropped: (reason: SealFailure) => {
          this.security.sealDrops[reason]++;
          this.ended.dropsInvalid++;
        },
        pendingDropped: (peer: string, reason: 'timeout' | 'evicted') => {
          this.security.pendingDropped++;
          this.logSecurity('debug', 'connection-dropped', { peer, reason: reason === 'timeout' ? 'no hello in time' : 'too many connections waiting for their hello' });
        },
      };
      const opts = { host: this.o.listen, port: this.o.port, handlers, tls: this.o.tls, helloTimeoutMs: this.o.helloTimeoutMs, maxPending: this.o.maxPending };
      this.transport = this.o.transport === 'udp' ? new UdpServerTransport(opts) : new TcpServerTransport(opts);
      const bound = await this.transport.listen();
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
      for (const w of this.o.tls?.warnings ?? []) this.log.warn('tls-warning', { reason: w });
      return bound;
    } catch (e) {
      await this.stop('start failed');
      throw e;
    }
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
      deliver: (frame) => {
        toTap.push(frame);
        return true;
      },
    };
    this.tapPort = port;
    this.sw.addPort(port);
    device.onFrames((frames) => {
      stats.framesIn += frames.length;
      for (const f of frames) {
        stats.bytesIn += f.length;
        if (f.length >= 14) this.sw.forward(f, port);
      }
    });
  }

  private async setUpForwarding(): Promise<void> {
    const tap = this.o.tap;
    const subnet = `${this.cidr.network}/${this.cidr.prefix}`;
    await this.o.net.enableForwarding();
    const tag = ['-m', 'comment', '--comment', `ctun:${tap}`];
    const wanted: Rule[] = [
      { table: 'nat', chain: 'POSTROUTING', rule: ['-s', subnet, '!', '-o', tap, '-j', 'MASQUERADE', ...tag] },
      { table: 'filter', chain: 'FORWARD', rule: ['-i', tap, '-j', 'ACCEPT', ...tag] },
      { table: 'filter', chain: 'FORWARD', rule: ['-o', tap, '-m', 'conntrack', '--ctstate', 'RELATED,ESTABLISHED', '-j', 'ACCEPT', ...tag] },
      // Inner TCP must never need fragments: clamp the MSS to the path MTU.
      { table: 'mangle', chain: 'FORWARD', rule: ['-p', 'tcp', '--tcp-flags', 'SYN,RST', 'SYN', '-j', 'TCPMSS', '--clamp-mss-to-pmtu', ...tag] },
    ];
    for (const r of wanted) {
      if (await this.o.net.ensureRule(r.table, r.chain, r.rule)) this.rules.push(r);
    }
    this.log.info('forwarding-enabled', { subnet, nat: 'MASQUERADE', tap });
  }

  private onMessage(link: PeerLink, m: Message): void {
    const now = this.o.now();
    const session = this.byLink.get(link);
    if (session !== undefined) session.lastSeen = now;
    switch (m.type) {
      case MessageType.Hello:
        void this.onHello(link, m, now);
        return;
      case MessageType.Data:
        if (session === undefined) return this.notifyNoSession(link, now);
        session.stats.framesIn++;
        session.stats.bytesIn += m.frame.length;
        this.sw.forward(m.frame, session);
        return;
      case MessageType.Ping:
        if (session === undefined) return this.notifyNoSession(link, now);
        link.send(encode({ type: MessageType.Pong, nonce: m.nonce }));
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

  private async onHello(link: PeerLink, hello: Hello, now: number): Promise<void> {
    const reject = (code: ErrorCode, reason: string): void => {
      this.log.warn('client-rejected', { peer: link.id, code: ErrorCode[code], reason });
      link.send(encode({ type: MessageType.Error, code, reason }));
      if (link.transport === 'tcp') link.close();
    };
    const id = hello.sessionId.toString('hex');
    if (hello.destination !== undefined) {
      if (this.o.mode !== 'separate') {
        return reject(ErrorCode.ModeMismatch, `this server runs in local mode and routes no --dest; connect without --dest, or run the server with --mode separate`);
      }
      const problem = await this.checkDestination(hello.destination);
      if (problem !== undefined) return reject(ErrorCode.DestinationRejected, problem);
    }
    let session = this.sessions.get(id);
    const resumed = session !== undefined;
    if (session === undefined) {
      if (this.sessions.size >= this.o.maxSessions) return reject(ErrorCode.ServerFull, `server has its maximum of ${this.o.maxSessions} clients`);
      session = new Session(id, link, hello.destination, now);
      this.sessions.set(id, session);
      this.sw.addPort(session);
    } else {
      const old = session.link;
      if (old !== undefined && old !== link) {
        this.byLink.delete(old);
        if (old.transport === 'tcp') old.close();
      }
      session.attach(link, now);
    }
    this.byLink.set(link, session);
    this.noSessionNotified.delete(link.id);
    link.send(
      encode({
        type: MessageType.Welcome,
        version: PROTOCOL_VERSION,
        resumed,
        mtu: this.o.mtu,
        sessionId: hello.sessionId,
        serverAddress: this.cidr.address,
        prefix: this.cidr.prefix,
        keepaliveMs: this.o.keepaliveMs,
      }),
    );
    this.log.info(resumed ? 'client-resumed' : 'client-connected', {
      peer: link.id,
      ...(link.identity === undefined ? {} : { identity: link.identity }),
      session: id.slice(0, 8),
      transport: link.transport,
      mode: hello.mode === TunnelMode.Separate ? 'separate' : 'local',
      dest: hello.destination,
      clients: this.sessions.size,
    });
  }

  /** In separate mode a destination must be reachable, and not through the tunnel itself. */
  private async checkDestination(dest: string): Promise<string | undefined> {
    if (inSubnet(dest, this.cidr)) return `destination ${dest} is inside the tunnel subnet ${this.cidr.network}/${this.cidr.prefix}; give the target's own address`;
    const route = await this.o.net.routeTo(dest);
    if (route === undefined) return `the server has no route to destination ${dest}`;
    if (route.dev === this.o.tap) return `destination ${dest} routes back into the tunnel`;
    return undefined;
  }

  /** Tells an unknown UDP peer (typically: this server restarted) to say hello again, at most once a second. */
  private notifyNoSession(link: PeerLink, now: number): void {
    const last = this.noSessionNotified.get(link.id) ?? 0;
    if (now - last < 1000) return;
    if (this.noSessionNotified.size > 4096) this.noSessionNotified.clear();
    this.noSessionNotified.set(link.id, now);
    link.send(encode({ type: MessageType.Error, code: ErrorCode.NoSession, reason: 'no session for this peer; send hello' }));
  }

  private onInvalid(link: PeerLink, e: ProtocolError): void {
    this.ended.dropsInvalid++;
    // Rate-limit: a flood of garbage must not become a flood of log lines.
    if (this.invalidLogged < 20) {
      this.invalidLogged++;
      this.log.warn('invalid-message', { peer: link.id, code: ErrorCode[e.code], reason: e.message });
    }
    // Only a peer that speaks our protocol (a hello with our magic) gets an answer
    // on UDP; answering arbitrary datagrams would make us a reflector.
    if (link.transport === 'tcp' || e.code === ErrorCode.VersionMismatch) {
      link.send(encode({ type: MessageType.Error, code: e.code, reason: e.message }));
    }
    if (link.transport === 'udp' && !this.byLink.has(link)) link.close();
  }

  /** A refused TLS peer: always counted, logged with its reason (rate-limited against floods). */
  private onRefused(peer: string, reason: string, refusal: boolean): void {
    if (refusal) this.security.refused++;
    else this.security.handshakeFailed++;
    this.logSecurity(refusal ? 'warn' : 'debug', refusal ? 'client-refused' : 'tls-handshake-failed', { peer, reason });
  }

  private logSecurity(level: 'warn' | 'debug', event: string, fields: Record<string, string>): void {
    if (level === 'debug') return this.log.debug(event, fields);
    if (this.securityLogged < 50) {
      this.securityLogged++;
      this.log.warn(event, fields);
      if (this.securityLogged === 50) this.log.warn('log-limit', { reason: 'further refusals are only counted (SIGUSR1 prints the counts)' });
    }
  }

  private onLinkClosed(link: PeerLink): void {
    const session = this.byLink.get(link);
    this.byLink.delete(link);
    if (session === undefined || session.link !== link) return;
    session.detach(this.o.now());
    this.log.info('client-detached', { peer: link.id, session: session.id.slice(0, 8), graceMs: this.o.graceMs });
  }

  private sweep(): void {
    const now = this.o.now();
    for (const session of this.sessions.values()) {
      if (session.link !== undefined && now - session.lastSeen > this.o.deadAfterMs) {
        const link = session.link;
        this.log.warn('client-silent', { peer: link.id, session: session.id.slice(0, 8), silentMs: now - session.lastSeen });
        this.byLink.delete(link);
        link.close();
        session.detach(now);
      } else if (session.link === undefined && session.detachedAt !== undefined && now - session.detachedAt > this.o.graceMs) {
        this.endSession(session, 'grace period over');
      }
    }
    this.sw.expire(now);
  }

  private endSession(session: Session, reason: string): void {
    this.sessions.delete(session.id);
    if (session.link !== undefined) {
      this.byLink.delete(session.link);
      if (session.link.transport === 'tcp') session.link.close();
      else session.link.close();
    }
    session.detach(this.o.now());
    this.sw.removePort(session);
    addStats(this.ended, session.stats);
    this.log.info('session-ended', { session: session.id.slice(0, 8), reason, clients: this.sessions.size });
  }

  /** Sessions alive (attached or in grace), for tests and status. */
  get sessionCount(): number {
    return this.sessions.size;
  }

  /** Statistics of every session so far plus the TAP, for SIGUSR1 and exit. */
  stats(): { clients: TunnelStats; tap: TunnelStats; sessions: number; macs: number; security: SecurityStats } {
    const clients = createStats();
    addStats(clients, this.ended);
    for (const s of this.sessions.values()) addStats(clients, s.stats);
    clients.dropsInvalid += this.transport?.filteredDatagrams?.() ?? 0;
    return { clients, tap: { ...this.tapStats }, sessions: this.sessions.size, macs: this.sw.size, security: { ...this.security, sealDrops: { ...this.security.sealDrops } } };
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
    await this.transport?.close().catch(() => {});
    for (const r of this.rules.reverse()) await this.o.net.deleteRule(r.table, r.chain, r.rule).catch(() => {});
    this.rules = [];
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

export function newSessionId(): Buffer {
  return randomBytes(16);
}

export function assertServerMode(mode: string): ServerMode {
  if (mode !== 'local' && mode !== 'separate') {
    throw new CtunError('BAD_MODE', `--mode must be local or separate, got "${mode}"`, { exitCode: ExitCode.Usage });
  }
  return mode;
}
