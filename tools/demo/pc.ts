/**
 * A network namespace standing for the user's PC: its only path to the Docker host is
 * one veth pair, so container addresses are not reachable from it, as from a real
 * remote PC. The tunnel port is published on the host end of that veth.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { execa } from 'execa';

export interface PcOptions {
  /** Distinguishes concurrent PCs (names, addresses); 0-250. */
  index?: number;
  /** Prefix of the names; default `ctunpc`. */
  prefix?: string;
}

export class Pc {
  private constructor(
    /** The namespace's name. */
    readonly name: string,
    /** The veth end in the host's namespace. */
    readonly hostIf: string,
    /** Address of the Docker host as the PC sees it. */
    readonly hostAddress: string,
    /** Address of the PC on the veth. */
    readonly address: string,
  ) {}

  /** Creates the namespace and its veth to the host; anything left from an earlier run with the same name goes first. */
  static async create(options: PcOptions = {}): Promise<Pc> {
    const index = options.index ?? 0;
    const prefix = options.prefix ?? 'ctunpc';
    const name = `${prefix}${index}`;
    const hostIf = `${prefix}${index}h`.slice(0, 15);
    const pcIf = `${prefix}${index}p`.slice(0, 15);
    const hostAddress = `10.213.${index}.1`;
    const address = `10.213.${index}.2`;
    await execa('ip', ['netns', 'del', name], { reject: false });
    await execa('ip', ['link', 'del', hostIf], { reject: false });
    await execa('ip', ['netns', 'add', name]);
    const pc = new Pc(name, hostIf, hostAddress, address);
    try {
      await pc.ip('link', 'set', 'lo', 'up');
      await execa('ip', ['link', 'add', hostIf, 'type', 'veth', 'peer', 'name', pcIf, 'netns', name]);
      await execa('ip', ['addr', 'add', `${hostAddress}/30`, 'dev', hostIf]);
      await execa('ip', ['link', 'set', hostIf, 'up']);
      await pc.ip('addr', 'add', `${address}/30`, 'dev', pcIf);
      await pc.ip('link', 'set', pcIf, 'up');
    } catch (e) {
      await pc.destroy();
      throw e;
    }
    return pc;
  }

  async ip(...args: string[]): Promise<string> {
    return (await execa('ip', ['-n', this.name, ...args])).stdout;
  }

  /** Runs a program in the PC to its end. */
  exec(file: string, args: string[], options: { timeout?: number; reject?: boolean } = {}) {
    return execa('ip', ['netns', 'exec', this.name, file, ...args], { reject: options.reject ?? false, timeout: options.timeout ?? 30_000, all: true });
  }

  /** Starts a long-running program in the PC (`ip netns exec` execs it, so the pid is the program's). */
  spawn(file: string, args: string[]): ChildProcess {
    return spawn('ip', ['netns', 'exec', this.name, file, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  }

  /** Whether the PC has a route to an address at all. */
  async routeTo(address: string): Promise<boolean> {
    return (await execa('ip', ['-n', this.name, 'route', 'get', address], { reject: false })).exitCode === 0;
  }

  async destroy(): Promise<void> {
    await execa('ip', ['netns', 'del', this.name], { reject: false });
    await execa('ip', ['link', 'del', this.hostIf], { reject: false });
  }
}
