import { describe, expect, it } from 'vitest';
import { formatHostPort, unbracket } from './index.js';

describe('formatHostPort', () => {
  it('brackets an IPv6 address, so the port stays a port', () => {
    expect(formatHostPort('::1', 1723)).toBe('[::1]:1723');
    expect(formatHostPort('fd00::5', 31723)).toBe('[fd00::5]:31723');
    expect(formatHostPort('::ffff:10.0.0.1', 40000)).toBe('[::ffff:10.0.0.1]:40000');
    expect(formatHostPort('::', '1723')).toBe('[::]:1723');
  });

  it('leaves IPv4 addresses, names and an already bracketed address as they are', () => {
    expect(formatHostPort('10.0.0.5', 1723)).toBe('10.0.0.5:1723');
    expect(formatHostPort('sim.lab', 1723)).toBe('sim.lab:1723');
    expect(formatHostPort('[fd00::5]', 1723)).toBe('[fd00::5]:1723');
  });
});

describe('unbracket', () => {
  it('takes the brackets off an address written for a port to follow, and leaves the rest', () => {
    expect(unbracket('[fd00::1]')).toBe('fd00::1');
    expect(unbracket('fd00::1')).toBe('fd00::1');
    expect(unbracket('10.0.0.5')).toBe('10.0.0.5');
    expect(unbracket('sim.lab')).toBe('sim.lab');
  });
});
