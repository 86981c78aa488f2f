import { Fragment, memo, useEffect, useMemo, useState } from 'react';
import { toJsxRuntime } from 'hast-util-to-jsx-runtime';
import { jsx, jsxs } from 'react/jsx-runtime';
import ReactMarkdown from 'react-markdown';
import remarkGfm from 'remark-gfm';
import remend from 'remend';
import { CopyButton } from './CopyButton.jsx';

// A model's reply as Markdown (GitHub's flavour). Raw HTML in it is shown as text, never run;
// links open in a new tab without the page as opener; images are links, not loaded, so a reply
// cannot make the browser fetch an address that carries what the chat says.

const REMARK_PLUGINS = [remarkGfm];

function textOf(node) {
  if (!node) return '';
  if (node.type === 'text') return node.value;
  return (node.children ?? []).map(textOf).join('');
}

// The highlighter and its grammars are a chunk of their own, loaded with the first code block: a
// chat without code does not pay for it, and code shows plain until it arrives.
let highlighter = null;
let loadingHighlighter = null;

function useHighlighter() {
  const [loaded, setLoaded] = useState(() => highlighter);
  useEffect(() => {
    if (loaded) return undefined;
    let live = true;
    loadingHighlighter ??= import('./highlight.js').then((module) => {
      highlighter = module.highlight;
      return highlighter;
    });
    loadingHighlighter.then(
      (highlight) => live && setLoaded(() => highlight),
      () => {
        // Offline or a stale deployment: the code stays plain, and the next block tries again.
        loadingHighlighter = null;
      },
    );
    return () => {
      live = false;
    };
  }, [loaded]);
  return loaded;
}

function CodeBlock({ node }) {
  const highlight = useHighlighter();
  const code = node?.children?.find((child) => child.type === 'element' && child.tagName === 'code');
  const language = (code?.properties?.className ?? [])
    .map(String)
    .find((name) => name.startsWith('language-'))
    ?.slice('language-'.length);
  const text = textOf(code).replace(/\n$/, '');
  const highlighted = useMemo(() => {
    const tree = highlight?.(language, text);
    return tree ? toJsxRuntime(tree, { Fragment, jsx, jsxs }) : text;
  }, [highlight, language, text]);
  return (
    <div className="code-block" data-language={language ?? ''}>
      <div className="code-head">
        <span className="code-language">{language || 'text'}</span>
        <CopyButton text={text} label="Copy code" className="action-button code-copy" />
      </div>
      <pre>
        <code className={language ? `hljs language-${language}` : 'hljs'}>{highlighted}</code>
      </pre>
    </div>
  );
}

function Link({ href, children }) {
  if (!href) return <span className="link-incomplete">{children}</span>;
  return (
    <a href={href} target="_blank" rel="noopener noreferrer">
      {children}
    </a>
  );
}

function Image({ src, alt }) {
  if (!src) return alt ? <span>{alt}</span> : null;
  return (
    <a href={src} target="_blank" rel="noopener noreferrer" className="image-link">
      {alt ? `Image: ${alt}` : 'Image'}
    </a>
  );
}

function Table({ children }) {
  return (
    <div className="table-scroll">
      <table>{children}</table>
    </div>
  );
}

const COMPONENTS = { pre: CodeBlock, a: Link, img: Image, table: Table };

function MarkdownView({ text, streaming }) {
  // Mid-stream a reply often ends inside `**bold` or `` `code ``: closing those first keeps the
  // markers from flashing up as text. An unclosed code fence already renders as a code block.
  const source = streaming ? remend(text, { linkMode: 'text-only' }) : text;
  return (
    <ReactMarkdown remarkPlugins={REMARK_PLUGINS} components={COMPONENTS}>
      {source}
    </ReactMarkdown>
  );
}

export const Markdown = memo(MarkdownView);
