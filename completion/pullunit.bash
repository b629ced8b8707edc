# bash completion for pullunit(1)                                  -*- shell-script -*-
#
# Completes commands, their options, and app names from the config directory (the
# --config-dir given on the line, else $PULLUNIT_CONFIG_DIR, else /etc/pullunit).
# Self-contained: works with or without the bash-completion package loaded.

_pullunit_apps()
{
    local dir=$1 f name
    [[ -d $dir ]] || return 0
    for f in "$dir"/*.toml; do
        [[ -f $f ]] || continue
        name=${f##*/}
        [[ $name == *.lock.toml || $name == .* || $name == pullunit.toml ]] && continue
        printf '%s\n' "${name%.toml}"
    done
}

_pullunit()
{
    local cur prev words cword
    if declare -F _get_comp_words_by_ref >/dev/null; then
        # bash-completion: keep "app:name" as one word
        _get_comp_words_by_ref -n : cur prev words cword
    else
        cur=${COMP_WORDS[COMP_CWORD]}
        prev=${COMP_WORDS[COMP_CWORD-1]}
        words=("${COMP_WORDS[@]}")
        cword=$COMP_CWORD
    fi

    local commands="generate validate init pull status doctor pin rollback prefetch metrics update ready cat"
    local global_opts="-h --help --version --debug"

    # The command is the first word after "pullunit" that is not an option; remember
    # --config-dir wherever it appears so app names come from the right place.
    local i cmd="" config_dir=${PULLUNIT_CONFIG_DIR:-/etc/pullunit}
    for ((i = 1; i < cword; i++)); do
        case ${words[i]} in
            --config-dir | --output-dir | --image | --to | --repeat | --interval | --container | \
            --start-timeout | --stop-timeout)
                # "--opt VALUE", or "--opt = VALUE" as bash splits "--opt=VALUE"
                local name=${words[i]}
                [[ ${words[i+1]} == = ]] && ((i += 1))
                if [[ $name == --config-dir ]] && ((i + 1 < cword)); then
                    config_dir=${words[i+1]}
                fi
                ((i += 1))
                ;;
            -*) ;;
            *)
                [[ -z $cmd ]] && cmd=${words[i]}
                ;;
        esac
    done
    # ~/x in the line is not expanded by bash here; do what the shell would do.
    [[ $config_dir == "~"* ]] && config_dir=$HOME${config_dir#"~"}

    # "--opt=<TAB>": bash splits the word at '=', so the option is two words back.
    local opt=$prev
    if [[ $prev == = && $cword -ge 2 ]]; then
        opt=${words[cword-2]}
    fi

    case $opt in
        --config-dir | --output-dir)
            COMPREPLY=($(compgen -d -- "$cur"))
            compopt -o filenames 2>/dev/null
            return 0
            ;;
        --image | --to | --repeat | --interval | --container | --start-timeout | --stop-timeout)
            # An image reference, a digest, a number, a name or a time span: nothing to offer.
            COMPREPLY=()
            return 0
            ;;
    esac

    if [[ -z $cmd ]]; then
        if [[ $cur == -* ]]; then
            COMPREPLY=($(compgen -W "$global_opts" -- "$cur"))
        else
            COMPREPLY=($(compgen -W "$commands" -- "$cur"))
        fi
        return 0
    fi

    local opts="" args=""
    case $cmd in
        generate)
            opts="--output-dir --dry-run --reload --enable --start"
            args=apps-or-files
            ;;
        validate)
            args=apps-or-files
            ;;
        init)
            opts="--image"
            args=none
            ;;
        pull)
            opts="--json"
            args=apps
            ;;
        cat)
            opts="--json"
            args=apps-or-files
            ;;
        status | pin | prefetch)
            [[ $cmd == pin ]] && opts="--check" || opts="--json"
            args=apps
            ;;
        doctor)
            opts="--json --repeat --interval --compare"
            args=apps
            ;;
        rollback)
            opts="--to --no-restart"
            args=apps
            ;;
        update)
            opts="--to --auto --dry-run --no-rollback --json"
            args=apps
            ;;
        ready)
            opts="--container --start-timeout --stop-timeout"
            args=apps
            ;;
        metrics)
            args=apps
            ;;
        *)
            COMPREPLY=()
            return 0
            ;;
    esac
    opts="-h --help --config-dir $opts"

    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$opts" -- "$cur"))
        return 0
    fi

    COMPREPLY=()
    case $args in
        apps | apps-or-files)
            local IFS=$'\n'
            COMPREPLY=($(compgen -W "$(_pullunit_apps "$config_dir")" -- "$cur"))
            if [[ $args == apps-or-files && ( $cur == */* || $cur == .* || $cur == "~"* ) ]]; then
                COMPREPLY+=($(compgen -f -X '!*.toml' -- "$cur") $(compgen -d -- "$cur"))
                compopt -o filenames 2>/dev/null
            fi
            ;;
    esac
    # App names may contain ':', which bash splits words at by default.
    if declare -F __ltrim_colon_completions >/dev/null; then
        __ltrim_colon_completions "$cur"
    fi
    return 0
}

complete -F _pullunit pullunit
