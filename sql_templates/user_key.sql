{#- One of the service user's two public-key slots: rotation installs the new key in the free slot,
    proves a login with it, then removes the old one, so no login fails meanwhile
    (docs/snowflake-facts.md §7). Without public_key: UNSET. -#}
ALTER USER {{ target.user | ident }}
{%- if public_key %} SET {% else %} UNSET {% endif -%}
{%- if slot == 1 %}RSA_PUBLIC_KEY{% else %}RSA_PUBLIC_KEY_2{% endif -%}
{%- if public_key %} = {{ public_key | literal }}{% endif %}
