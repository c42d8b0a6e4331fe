#!/usr/bin/env node
// Runs the TypeScript CLI through tsx, so a checkout needs no compile step.
import { register } from 'tsx/esm/api';
register();
await import('../tools/cli/ctun-build.ts');
