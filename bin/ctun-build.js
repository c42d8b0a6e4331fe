#!/usr/bin/env node
// ctun-build: the TypeScript through tsx in a checkout, the bundle in an install (see launch.js).
import { launch } from './launch.js';
await launch('ctun-build');
