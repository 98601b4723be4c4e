# Warnings are errors everywhere; sanitizer and hardening flags are options.
add_compile_options(-Wall -Wextra -Werror -Wformat=2 -Wshadow -Wstrict-prototypes
	-Wmissing-prototypes -Wvla -Wpointer-arith -Wno-unused-parameter
	-fvisibility=hidden -fno-strict-aliasing -D_GNU_SOURCE)

if(VAULTD_SANITIZE)
	add_compile_options(-fsanitize=address,undefined -fno-sanitize-recover=all
		-fno-omit-frame-pointer -g -O1)
	add_link_options(-fsanitize=address,undefined -fno-sanitize-recover=all)
elseif(VAULTD_HARDEN)
	add_compile_options(-fstack-protector-strong -fstack-clash-protection -fPIE)
	if(NOT CMAKE_BUILD_TYPE STREQUAL "Debug")
		add_compile_options(-D_FORTIFY_SOURCE=2 -O2)
	endif()
	add_link_options(-pie -Wl,-z,relro,-z,now -Wl,-z,noexecstack)
endif()
