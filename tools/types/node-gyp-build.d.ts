// node-gyp-build ships no types; this is the part ctun uses.
declare module 'node-gyp-build' {
  /** Loads the addon of the folder `dir` (build/Release, else a matching prebuild). */
  function load(dir: string): unknown;
  namespace load {
    /** The file load(dir) would load; throws when none fits this platform. */
    function path(dir: string): string;
  }
  export default load;
}
