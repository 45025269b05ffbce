/** Entry point: mounts the console into #app (index.html has no inline script; this file is its only script). */
import { render } from 'preact';
import { App } from './app.js';

render(<App />, document.getElementById('app')!);
