import { describe, expect, it } from 'vitest';
import { choosePythonSource, pypiAnswers, pythonSourceFrom, PYTHON_SOURCE_ENV } from './python.js';

const never = (): Promise<boolean> => Promise.reject(new Error('the PyPI probe must not run'));

describe('where the demo gets its Python packages', () => {
  it('asks PyPI only for auto; debian never contacts it, pypi does not ask first', async () => {
    expect(await choosePythonSource('debian', never)).toEqual({ source: 'debian', reason: 'PyPI not asked (--python debian)' });
    expect(await choosePythonSource('pypi', never)).toMatchObject({ source: 'pypi' });
    expect(await choosePythonSource('auto', async () => true)).toEqual({ source: 'pypi', reason: 'PyPI answers' });
    expect(await choosePythonSource('auto', async () => false)).toEqual({ source: 'debian', reason: 'PyPI does not answer within 4 s' });
  });

  it('the probe is bounded as a whole and counts only an answer as PyPI answering', async () => {
    const hangs = (): Promise<never> => new Promise(() => undefined);
    const asked: string[] = [];
    expect(await pypiAnswers(async (url) => (asked.push(url), { status: 200 }), 1000)).toBe(true);
    expect(asked).toEqual(['https://pypi.org/simple/supervisor/']);
    expect(await pypiAnswers(async () => ({ status: 503 }), 1000)).toBe(false);
    expect(await pypiAnswers(async () => ({ error: 'EAI_AGAIN getaddrinfo' }), 1000)).toBe(false);
    const started = Date.now();
    expect(await pypiAnswers(hangs, 100)).toBe(false);
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('takes the option, else the environment, else auto; a wrong value is a usage error naming where it came from', () => {
    expect(pythonSourceFrom(undefined, {})).toBe('auto');
    expect(pythonSourceFrom(undefined, { [PYTHON_SOURCE_ENV]: 'debian' })).toBe('debian');
    expect(pythonSourceFrom('pypi', { [PYTHON_SOURCE_ENV]: 'debian' })).toBe('pypi');
    expect(() => pythonSourceFrom(undefined, { [PYTHON_SOURCE_ENV]: 'apt' })).toThrow(expect.objectContaining({ code: 'DEMO_BAD_PYTHON_SOURCE', exitCode: 1, message: '$CTUN_DEMO_PYTHON is "apt"; expected one of auto, pypi, debian' }));
  });
});
